/**
 * Headers on every answer of the web role. The Content-Security-Policy lets
 * a page load scripts, styles, images and connections only from this
 * origin (images also as data: URIs, which the report's charts are), so no
 * page makes a request to another host: Bull Board's page links Google
 * Fonts, and the browser never fetches them. Inline styles stay allowed
 * (the report is styled inline, as mail clients need); inline scripts do
 * not. No other site may frame a page (a framed board could be clicked
 * through by a page on top of it).
 */
import type { RequestHandler } from 'express';

export const CONTENT_SECURITY_POLICY = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data:",
  "font-src 'self'",
  "connect-src 'self'",
  "object-src 'none'",
  "base-uri 'self'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

export function securityHeaders(): RequestHandler {
  return (_req, res, next) => {
    // Browsers must take each response as the type it says (JSON stays JSON), never guess HTML from its body.
    res.set('X-Content-Type-Options', 'nosniff');
    res.set('Content-Security-Policy', CONTENT_SECURITY_POLICY);
    // For browsers that predate frame-ancestors.
    res.set('X-Frame-Options', 'DENY');
    // Links out of the console (a target's URL in a finding) do not carry the console's paths and queries.
    res.set('Referrer-Policy', 'same-origin');
    next();
  };
}
