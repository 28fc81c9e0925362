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
 * Client errors that say so (`expose`, 4xx: a malformed JSON body) keep
 * their status and message; anything else is a 500 with a fixed message,
 * logged with the request it broke.
 */
export function errorHandler(log: Logger): ErrorRequestHandler {
  return (thrown: unknown, req, res, next) => {
    const err = coerceError(thrown) as HttpError;
    if (res.headersSent) {
      // Too late for a JSON answer: let express end the response.
      next(err);
      return;
    }
    if (err.expose === true && typeof err.status === 'number' && err.status >= 400 && err.status < 500) {
      res.status(err.status).json({ error: err.message });
      return;
    }
    log.error(
      { err: redactSecretsIn(err.message), stack: err.stack && redactSecretsIn(err.stack), method: req.method, path: req.path },
      'request failed',
    );
    res.status(500).json({ error: 'internal error' });
  };
}
