// Problems (RFC 9457 problem+json) as typed values, and Retry-After.
import type { components } from "./schema.js";

export type Problem = components["schemas"]["Problem"];
export type FieldError = components["schemas"]["FieldError"];

/** A problem+json answer of the gateway, as an exception. */
export class GatewayProblem extends Error {
  /** The HTTP status. */
  readonly status: number;
  /** The stable problem type, for code to switch on (`urn:gateway:problem:validation`);
   * `about:blank` for an answer that was not a problem (a proxy's error page). */
  readonly type: Problem["type"] | "about:blank";
  readonly title: string;
  readonly detail: string | undefined;
  /** Quote it when reporting a problem. */
  readonly requestId: string | undefined;
  /** Every field or parameter at fault, for a validation problem. */
  readonly errors: FieldError[];
  /** Seconds to wait before trying again, when the gateway said so. */
  readonly retryAfterSeconds: number | undefined;
  readonly problem: Problem;

  constructor(problem: Problem, retryAfterSeconds?: number) {
    super(`${problem.title}${problem.detail ? `: ${problem.detail}` : ""} (request ${problem.request_id ?? "?"})`);
    this.name = "GatewayProblem";
    this.problem = problem;
    this.status = problem.status;
    this.type = problem.type;
    this.title = problem.title;
    this.detail = problem.detail ?? undefined;
    this.requestId = problem.request_id ?? undefined;
    this.errors = problem.errors ?? [];
    this.retryAfterSeconds = retryAfterSeconds;
  }

  /**
   * What is wrong with each field, by form field name: a body member by its
   * pointer without `#/` (`billing/zipcode` for a nested one), a parameter
   * by its name. Show each beside its field.
   */
  fieldMessages(): Record<string, string> {
    const messages: Record<string, string> = {};
    for (const error of this.errors) {
      const name = error.pointer != null ? error.pointer.replace(/^#\/?/, "") : (error.parameter ?? error.field);
      messages[name || "body"] = error.detail;
    }
    return messages;
  }
}

export function isProblem(value: unknown): value is Problem {
  return (
    typeof value === "object" &&
    value !== null &&
    typeof (value as Problem).type === "string" &&
    typeof (value as Problem).status === "number" &&
    typeof (value as Problem).title === "string"
  );
}

/** Milliseconds a Retry-After asks for: delta-seconds or an HTTP date. */
export function retryAfterMs(value: string | null): number | undefined {
  if (value == null || value.trim() === "") return undefined;
  const text = value.trim();
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  const date = Date.parse(text);
  return Number.isNaN(date) ? undefined : Math.max(0, date - Date.now());
}

/**
 * A 401: no valid credential. With a session, the person's session has
 * ended (`detail` says why: logged out, expired, ended at the identity
 * provider): send the page to `/auth/login?return_to=…`.
 */
export class SignedOut extends GatewayProblem {
  constructor(problem: Problem) {
    super(problem);
    this.name = "SignedOut";
  }

  /** Where to send the page to log in again, coming back to `returnTo`. */
  loginUrl(returnTo: string = "/"): string {
    return `/auth/login?return_to=${encodeURIComponent(returnTo)}`;
  }
}
