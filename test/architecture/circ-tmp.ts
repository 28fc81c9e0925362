import { importGraph, importCircles } from './imports';
const c = importCircles(importGraph());
for (const x of c) console.log(x.length, x.join(' '));
