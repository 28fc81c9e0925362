// Every test file: a task returning a finding code it does not declare fails its run.
import { refuseUndeclaredCodes } from '../../src/worker/undeclared-codes';

refuseUndeclaredCodes();
