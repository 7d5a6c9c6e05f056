// A typed client for the unified gateway API.
//
// The types are generated from the committed OpenAPI document
// (openapi-typescript, `npm run generate`); the calls go through
// openapi-fetch, so every path, parameter, body and answer is checked by the
// compiler against that document. This file adds what every frontend would
// otherwise write by hand: the API key, an Idempotency-Key on creates,
// problem+json errors as typed values, ETag revalidation, `fields` sent the
// way the gateway reads it, and retries that honour Retry-After.

import createClient, { type Client, type Middleware } from "openapi-fetch";
import type { components, paths } from "./schema.js";

export type { components, paths };
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

export interface GatewayClientOptions {
  /** Where the gateway answers, e.g. `https://gateway.internal`. */
  baseUrl: string;
  /** The API key, sent as `Authorization: Bearer <key>`. */
  apiKey: string;
  /** How many times a 429 or 503 is retried after its Retry-After (default 2; 0 turns retries off). */
  retries?: number;
  /** The longest Retry-After waited for (default 10,000 ms); a longer one is answered as it is. */
  maxRetryDelayMs?: number;
  /** Keep GET answers with their ETag and revalidate them with If-None-Match (default true). */
  revalidate?: boolean;
  /** How many GET answers revalidation keeps (default 200; the oldest goes first). */
  revalidateEntries?: number;
  /** The fetch to call (default: the global fetch). */
  fetch?: (request: Request) => Promise<Response>;
}

/** The routes that create, and take an Idempotency-Key. */
const CREATES = new Set(["/v1/customers"]);

/** A gateway client: openapi-fetch's `GET`, `POST`, `PATCH`… typed from the document. */
export type GatewayClient = Client<paths>;

export function createGatewayClient(options: GatewayClientOptions): GatewayClient {
  const client = createClient<paths>({
    baseUrl: options.baseUrl.replace(/\/+$/, ""),
    fetch: retrying(options.fetch ?? ((request) => fetch(request)), options),
    // `?fields=id,name`: one comma-separated value, as the document says
    // (style form, explode false); the gateway refuses `fields` twice.
    querySerializer: { array: { style: "form", explode: false } },
  });
  client.use(apiKey(options.apiKey), idempotencyKey());
  if (options.revalidate ?? true) {
    client.use(revalidation(options.revalidateEntries ?? 200));
  }
  return client;
}

/**
 * The data of a call, or its problem thrown as a {@link GatewayProblem}:
 * `const account = await must(client.GET("/v1/account"))`.
 */
export async function must<T>(
  call: Promise<{ data?: T; error?: unknown; response: Response }>,
): Promise<T> {
  const { data, error, response } = await call;
  if (response.ok && data !== undefined) {
    return data;
  }
  throw toProblem(error, response);
}

/** The problem of a failed answer, whatever its body held. */
export function toProblem(error: unknown, response: Response): GatewayProblem {
  const retryAfter = retryAfterMs(response.headers.get("retry-after"));
  const seconds = retryAfter === undefined ? undefined : Math.ceil(retryAfter / 1000);
  if (isProblem(error)) {
    return new GatewayProblem(error, seconds);
  }
  return new GatewayProblem(
    {
      type: "about:blank",
      title: response.statusText || `HTTP ${response.status}`,
      status: response.status,
      detail: typeof error === "string" ? error : undefined,
    } as unknown as Problem,
    seconds,
  );
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

function apiKey(key: string): Middleware {
  return {
    onRequest({ request }) {
      request.headers.set("Authorization", `Bearer ${key}`);
      return request;
    },
  };
}

/** A create without an Idempotency-Key gets one, made once per call, so
 * every retry of that call carries the same key and the gateway makes one
 * customer however many times it is sent. */
function idempotencyKey(): Middleware {
  return {
    onRequest({ request, schemaPath }) {
      if (request.method === "POST" && CREATES.has(schemaPath) && !request.headers.has("Idempotency-Key")) {
        request.headers.set("Idempotency-Key", crypto.randomUUID());
      }
      return request;
    },
  };
}

interface Kept {
  etag: string;
  body: string;
  headers: [string, string][];
}

/** GET answers kept with their ETag; a 304 is answered from the kept body
 * as the 200 it stands for (with `X-Revalidated: true`). */
function revalidation(entries: number): Middleware {
  const kept = new Map<string, Kept>();
  return {
    onRequest({ request }) {
      const entry = request.method === "GET" ? kept.get(request.url) : undefined;
      if (entry && !request.headers.has("If-None-Match")) {
        request.headers.set("If-None-Match", entry.etag);
      }
      return request;
    },
    async onResponse({ request, response }) {
      if (request.method !== "GET") {
        return response;
      }
      const entry = kept.get(request.url);
      if (response.status === 304 && entry) {
        const headers = new Headers(entry.headers);
        response.headers.forEach((value, name) => headers.set(name, value));
        headers.set("X-Revalidated", "true");
        return new Response(entry.body, { status: 200, statusText: "OK", headers });
      }
      const etag = response.headers.get("ETag");
      if (response.status === 200 && etag) {
        kept.delete(request.url);
        kept.set(request.url, {
          etag,
          body: await response.clone().text(),
          headers: [...response.headers.entries()],
        });
        while (kept.size > entries) {
          const oldest = kept.keys().next().value;
          if (oldest === undefined) break;
          kept.delete(oldest);
        }
      }
      return response;
    },
  };
}

/** Milliseconds a Retry-After asks for: delta-seconds or an HTTP date. */
export function retryAfterMs(value: string | null): number | undefined {
  if (value == null || value.trim() === "") return undefined;
  const text = value.trim();
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  const date = Date.parse(text);
  return Number.isNaN(date) ? undefined : Math.max(0, date - Date.now());
}

/** Retries a 429 or 503 after the wait its Retry-After asks for, a few
 * times. Both mean the request was not carried out (rate limited, the
 * upstream throttling, unreachable or paused), so a retry cannot do it
 * twice; a create keeps its Idempotency-Key. An answer without
 * Retry-After, or with a longer one than `maxRetryDelayMs`, is returned. */
function retrying(
  send: (request: Request) => Promise<Response>,
  options: GatewayClientOptions,
): (request: Request) => Promise<Response> {
  const retries = options.retries ?? 2;
  const longest = options.maxRetryDelayMs ?? 10_000;
  return async (request) => {
    for (let attempt = 0; ; attempt++) {
      const response = await send(request.clone());
      if ((response.status !== 429 && response.status !== 503) || attempt >= retries) {
        return response;
      }
      const wait = retryAfterMs(response.headers.get("retry-after"));
      if (wait === undefined || wait > longest) {
        return response;
      }
      await response.body?.cancel();
      await new Promise((resolve) => setTimeout(resolve, wait));
    }
  };
}

export { subscribe, parseFrames } from "./events.js";
export type { ChangeEvent, EventType, ResetEvent, StreamItem, SubscribeOptions } from "./events.js";
