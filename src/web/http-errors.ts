/**
 * The app's last two handlers: 404 for unknown paths, and JSON errors that
 * never carry a stack trace to the client (the log gets the details).
 */
import type { ErrorRequestHandler, RequestHandler } from 'express';
import type { Logger } from 'pino';
import { coerceError } from '../errors';
import { redactSecretsIn } from '../logger';

export function notFound(): RequestHandler {
  return (_req, res) => {
    res.status(404).json({ error: 'not found' });
  };
}

/** http-errors' shape, as body-parser throws it for a bad request body. */
interface HttpError extends Error {
  status?: number;
  expose?: boolean;
}

/**
 * The status a client error carries (400-499), or undefined for a server
 * error. http-errors marks its own as `expose`; the router's URIError for
 * a malformed %-escape in a path (`/reports/%E0`) carries 400 without it,
 * and is the client's fault all the same: not a 500 nor an error log line
 * that anyone can trigger.
 */
function clientStatus(err: HttpError): number | undefined {
  const status = err.status;
  if (typeof status !== 'number' || status < 400 || status >= 500) return undefined;
  return err.expose === true || err.name === 'URIError' ? status : undefined;
}

/**
 * Client errors keep their status; their message only when it says so
 * (`expose`: a malformed JSON body), since the router's quotes the raw
 * path back. Anything else is a 500 with a fixed message, logged with the
 * request it broke.
 */
export function errorHandler(log: Logger): ErrorRequestHandler {
  return (thrown: unknown, req, res, next) => {
    const err = coerceError(thrown) as HttpError;
    if (res.headersSent) {
      // Too late for a JSON answer: let express end the response.
      next(err);
      return;
    }
    const status = clientStatus(err);
    if (status !== undefined) {
      res.status(status).json({ error: err.expose === true ? err.message : 'bad request: malformed URL' });
      return;
    }
    log.error(
      { err: redactSecretsIn(err.message), stack: err.stack && redactSecretsIn(err.stack), method: req.method, path: req.path },
      'request failed',
    );
    res.status(500).json({ error: 'internal error' });
  };
}
