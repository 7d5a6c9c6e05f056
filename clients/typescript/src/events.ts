// `subscribe()`: the gateway's change stream (GET /v1/events), read with
// fetch so the API key travels in a header (a browser's EventSource cannot
// send one). It reconnects by itself after the `retry:` delay the gateway
// sets, with `Last-Event-ID`, so nothing is missed while the gap is within
// what the gateway keeps; when it is not, a `reset` item says to refetch.
// Frames are read by eventsource-parser (the WHATWG parsing rules: line
// ends, comments, multi-line data, chunks split anywhere), not by hand.

import { createParser, type EventSourceMessage } from "eventsource-parser";

import type { Credentials } from "./credentials.js";
import { GatewayProblem, isProblem, retryAfterMs } from "./problem.js";
import type { components } from "./schema.js";

export type ChangeEvent = components["schemas"]["ChangeEvent"];
export type ResetEvent = components["schemas"]["ResetEvent"];
export type EventType = ChangeEvent["type"];

/** One item of the stream: a change, or a reset (refetch what you show). */
export type StreamItem =
  | { kind: "change"; id: string; type: EventType; data: ChangeEvent }
  | { kind: "reset"; data: ResetEvent };

/**
 * In a page whose person logged in, `new EventSource("/v1/events")` needs
 * none of this (the browser sends the session cookie and resumes with
 * `Last-Event-ID` by itself); `subscribe({ session: true, ... })` gives the
 * same typed items as with a key.
 */
export type SubscribeOptions = Credentials & {
  baseUrl: string;
  /** Event types: `ticket.updated`, `invoice.*`… (default: every type). */
  types?: string[];
  /** Resume after this event id (a previous item's `id`). */
  lastEventId?: string;
  /** Stops the stream (and its reconnecting). */
  signal?: AbortSignal;
  /** The fetch to call (default: the global fetch). */
  fetch?: (request: Request) => Promise<Response>;
  /** Reconnection delay until the gateway sends its own `retry:` (ms). */
  initialRetryMs?: number;
  /** Called each time the stream is open (first connect and every
   * reconnect): from then on, no change is missed. */
  onOpen?: () => void;
};

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => {
      clearTimeout(timer);
      resolve();
    });
  });

/**
 * The change stream as an async iterator:
 *
 * ```ts
 * for await (const item of subscribe({ baseUrl, apiKey, types: ["ticket.*"], signal })) {
 *   if (item.kind === "reset") await refetchTickets();
 *   else updateTicket(item.data.id, item.data.changed);
 * }
 * ```
 *
 * A refused subscription (bad key, bad `types`) throws a GatewayProblem; a
 * 429 or 503 is retried after its Retry-After; a dropped connection after
 * the `retry:` delay, resuming after the last event received.
 */
export async function* subscribe(options: SubscribeOptions): AsyncGenerator<StreamItem> {
  const send = options.fetch ?? ((request: Request) => fetch(request));
  let lastEventId = options.lastEventId;
  let retry = options.initialRetryMs ?? 3000;
  const base = options.baseUrl.replace(/\/+$/, "");
  const query = options.types?.length ? `?types=${encodeURIComponent(options.types.join(","))}` : "";
  while (!options.signal?.aborted) {
    const headers: Record<string, string> = { Accept: "text/event-stream" };
    if (options.apiKey !== undefined) headers["Authorization"] = `Bearer ${options.apiKey}`;
    if (lastEventId) headers["Last-Event-ID"] = lastEventId;
    let response: Response;
    try {
      response = await send(
        new Request(`${base}/v1/events${query}`, {
          headers,
          signal: options.signal,
          ...(options.session ? { credentials: "include" as const } : {}),
        }),
      );
    } catch (error) {
      if (options.signal?.aborted) return;
      await sleep(retry, options.signal);
      continue;
    }
    if (response.status === 429 || response.status === 503) {
      await response.body?.cancel();
      await sleep(retryAfterMs(response.headers.get("retry-after")) ?? retry, options.signal);
      continue;
    }
    if (!response.ok || !response.body) {
      const body: unknown = await response.json().catch(() => undefined);
      throw new GatewayProblem(
        isProblem(body)
          ? body
          : ({ type: "about:blank", title: response.statusText, status: response.status } as unknown as GatewayProblem["problem"]),
      );
    }
    options.onOpen?.();
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    const parsed: EventSourceMessage[] = [];
    const parser = createParser({
      onEvent: (message) => parsed.push(message),
      onRetry: (ms) => (retry = ms),
    });
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        parser.feed(value);
        for (let message = parsed.shift(); message !== undefined; message = parsed.shift()) {
          if (message.event === undefined) continue;
          const data: unknown = JSON.parse(message.data);
          if (message.event === "reset") {
            // What was missed cannot be replayed: start afresh after a refetch.
            lastEventId = undefined;
            yield { kind: "reset", data: data as ResetEvent };
            continue;
          }
          if (message.id) lastEventId = message.id;
          yield { kind: "change", id: message.id ?? "", type: message.event as EventType, data: data as ChangeEvent };
        }
      }
    } catch {
      // The connection broke: reconnect below.
    } finally {
      reader.releaseLock();
    }
    if (options.signal?.aborted) return;
    await sleep(retry, options.signal);
  }
}
