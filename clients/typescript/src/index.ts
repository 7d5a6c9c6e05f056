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

import type { Credentials } from "./credentials.js";
import { GatewayProblem, isProblem, retryAfterMs, SignedOut, type Problem } from "./problem.js";

export type { components, paths };
export type { Credentials };
export { GatewayProblem, isProblem, retryAfterMs, SignedOut };
export type { FieldError, Problem } from "./problem.js";

export type GatewayClientOptions = Credentials & {
  /** Where the gateway answers, e.g. `https://gateway.internal` (in cookie mode, the page's own origin, `""`). */
  baseUrl: string;
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
};

/** The routes that create, and take an Idempotency-Key. */
const CREATES = new Set(["/v1/customers"]);

/**
 * A gateway client: openapi-fetch's `GET`, `POST`, `PATCH`… typed from the
 * document. Answers are typed as their whole JSON (`application/json`); an
 * answer cut by `fields` is the document's partial media type, typed by
 * {@link select}.
 */
export type GatewayClient = Client<WholePaths, "application/json">;

/** `{}` would take any object at all: a query left with no parameter is none. */
type NoneIfEmpty<T> = [keyof T] extends [never] ? never : T;

/** A read without its `fields` parameter: `GET` answers whole. */
type WithoutFields<Op> = Op extends { parameters: infer Params extends { query?: unknown } }
  ? NonNullable<Params["query"]> extends { fields?: unknown }
    ? Omit<Op, "parameters"> & {
        parameters: Omit<Params, "query"> & { query?: NoneIfEmpty<Omit<NonNullable<Params["query"]>, "fields">> };
      }
    : Op
  : Op;

/** The document's paths as `GET` serves them whole; `fields` is {@link select}'s. */
export type WholePaths = {
  [P in keyof paths]: { [M in keyof paths[P]]: M extends "get" ? WithoutFields<paths[P][M]> : paths[P][M] };
};

export function createGatewayClient(options: GatewayClientOptions): GatewayClient {
  const client = createClient<WholePaths, "application/json">({
    baseUrl: options.baseUrl.replace(/\/+$/, ""),
    fetch: retrying(options.fetch ?? ((request) => fetch(request)), options),
    // `?fields=id,name`: one comma-separated value, as the document says
    // (style form, explode false); the gateway refuses `fields` twice.
    querySerializer: { array: { style: "form", explode: false } },
    // The session cookie goes with every call (also to a gateway on another
    // origin that allows this one; same-origin is the documented setup).
    ...(options.session ? { credentials: "include" as const } : {}),
  });
  client.use(options.session ? session() : apiKey(options.apiKey), idempotencyKey());
  if (options.revalidate ?? true) {
    client.use(revalidation(options.revalidateEntries ?? 200));
  }
  return client;
}

type GetOperation<P extends keyof paths> = paths[P] extends { get: infer O } ? O : never;
type QueryOf<P extends keyof paths> = GetOperation<P> extends { parameters: { query?: infer Q } } ? NonNullable<Q> : never;
type PathParamsOf<P extends keyof paths> = GetOperation<P> extends { parameters: { path?: infer A } } ? A : never;
type WholeAnswer<P extends keyof paths> = GetOperation<P> extends {
  responses: { 200: { content: { "application/json": infer B } } };
}
  ? B
  : never;

/** A field name `path` documents for `fields` (dotted names included). */
export type FieldName<P extends keyof paths> = QueryOf<P> extends { fields?: infer F }
  ? NonNullable<F> extends readonly (infer N)[]
    ? N & string
    : never
  : never;

/** Every route that takes `fields`. */
export type ReadPath = { [P in keyof paths]: [FieldName<P>] extends [never] ? never : P }[keyof paths];

/** `total.amount` selects (part of) `total`. */
type TopName<F extends string> = F extends `${infer Head}.${string}` ? Head : F;
type Cut<T, F extends string> = { [K in TopName<F> & keyof T]: T[K] };

/**
 * The answer of `path` cut to `fields`: only the named members (a dotted
 * name keeps its parent, typed whole); a list keeps `total`, `page` and
 * `per_page`, and each item is cut.
 */
export type Selected<P extends ReadPath, F extends string> =
  WholeAnswer<P> extends { items: (infer Item)[]; total: number; page: number; per_page: number }
    ? Omit<WholeAnswer<P>, "items"> & { items: Cut<Item, F>[] }
    : Cut<WholeAnswer<P>, F>;

/** The rest of a read's parameters, beside `fields`. */
export interface SelectOptions<P extends ReadPath> {
  params?: {
    path?: PathParamsOf<P>;
    query?: Omit<QueryOf<P>, "fields">;
  };
  signal?: AbortSignal;
}

/**
 * Reads `path` with only `fields`, typed as what comes back: members not
 * asked for are not there, so reading one does not compile.
 * `const rows = await select(gateway, "/v1/billing/invoices", ["id", "total.amount"])`.
 * Its problem is thrown as a {@link GatewayProblem}, as {@link must} does.
 */
export async function select<P extends ReadPath, const F extends FieldName<P>>(
  client: GatewayClient,
  path: P,
  fields: readonly F[],
  options: SelectOptions<P> = {},
): Promise<Selected<P, F>> {
  // openapi-fetch's overloads cannot be called with a path that is itself
  // a type parameter; the arguments are typed above instead.
  const get = client.GET as unknown as (
    path: string,
    init: unknown,
  ) => Promise<{ data?: unknown; error?: unknown; response: Response }>;
  const { data, error, response } = await get(path, {
    params: { ...options.params, query: { ...options.params?.query, fields } },
    signal: options.signal,
  });
  if (response.ok && data !== undefined) {
    return data as Selected<P, F>;
  }
  throw toProblem(error, response);
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
    return response.status === 401 ? new SignedOut(error) : new GatewayProblem(error, seconds);
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

/** The methods a page on another site could send without a preflight. */
const SAFE = new Set(["GET", "HEAD", "OPTIONS"]);

/**
 * The session cookie's companion: `X-CSRF: 1` on every unsafe method (the
 * gateway refuses those without it, RFC 10017's custom-header defence).
 */
function session(): Middleware {
  return {
    onRequest({ request }) {
      if (!SAFE.has(request.method)) {
        request.headers.set("X-CSRF", "1");
      }
      return request;
    },
  };
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

export { subscribe } from "./events.js";
export type { ChangeEvent, EventType, ResetEvent, StreamItem, SubscribeOptions } from "./events.js";
