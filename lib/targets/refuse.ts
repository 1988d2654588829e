import type { Connection } from '../pipeline/connection.js';
import type { Outcome } from '../pipeline/record.js';
import { httpAnswer } from '../http/answer.js';
import type { Target } from '../pipeline/target.js';
import { UNRECOGNIZED_NAME_ALERT } from '../tls/alert.js';

/** Ends a matched connection without contacting a backend, optionally answering the client first. */
class RefuseTarget implements Target {
  constructor(
    private readonly outcome: Outcome,
    private readonly reason: string | null,
    private readonly answer: Buffer | null,
  ) {}

  handle(connection: Connection): void {
    if (this.answer === null) connection.finish(this.outcome, this.reason);
    else connection.respondAndClose(this.answer, this.outcome, this.reason);
  }
}

/** No route and no default: a fatal `unrecognized_name` alert, so the client reports a TLS error instead of a bare reset. */
export const UNRECOGNIZED_NAME: Target = new RefuseTarget('no_route', null, UNRECOGNIZED_NAME_ALERT);

/** An HTTP request for a Host no route serves, on a listener without a default. */
export const NO_HTTP_ROUTE: Target = new RefuseTarget('no_route', null, httpAnswer(404));

/**
 * A name a route matched that cannot fill its backend templates (a label no
 * DNS name may hold, a `{2}` where `*` matched one label): answered as a name
 * no route serves, with the reason in the record.
 */
export const UNRECOGNIZED_BACKEND_NAME: Target = new RefuseTarget('no_route', 'no_backend_name', UNRECOGNIZED_NAME_ALERT);
export const NO_HTTP_BACKEND_NAME: Target = new RefuseTarget('no_route', 'no_backend_name', httpAnswer(404));

/** The matched route's allow/deny lists refuse the client. */
export const REFUSE_BY_ROUTE_ACCESS_LIST: Target = new RefuseTarget('denied', 'route_access_list', null);
