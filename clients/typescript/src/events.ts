// `subscribe()`: the gateway's change stream (GET /v1/events), read with
// fetch so the API key travels in a header (a browser's EventSource cannot
// send one). It reconnects by itself after the `retry:` delay the gateway
// sets, with `Last-Event-ID`, so nothing is missed while the gap is within
// what the gateway keeps; when it is not, a `reset` item says to refetch.

import { GatewayProblem, isProblem, retryAfterMs } from "./problem.js";
import type { components } from "./schema.js";

export type ChangeEvent = components["schemas"]["ChangeEvent"];
export type ResetEvent = components["schemas"]["ResetEvent"];
export type EventType = ChangeEvent["type"];

/** One item of the stream: a change, or a reset (refetch what you show). */
export type StreamItem =
  | { kind: "change"; id: string; type: EventType; data: ChangeEvent }
  | { kind: "reset"; data: ResetEvent };

export interface SubscribeOptions {
  baseUrl: string;
  apiKey: string;
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
}

interface Frame {
  id?: string;
  event?: string;
  data?: string;
  retry?: number;
}

/** Splits SSE text into frames; returns the frames and the unfinished rest. */
export function parseFrames(text: string): { frames: Frame[]; rest: string } {
  const frames: Frame[] = [];
  const normalized = text.replace(/\r\n?/g, "\n");
  const blocks = normalized.split("\n\n");
  const rest = blocks.pop() ?? "";
  for (const block of blocks) {
    const frame: Frame = {};
    for (const line of block.split("\n")) {
      if (line === "" || line.startsWith(":")) continue;
      const colon = line.indexOf(":");
      const field = colon === -1 ? line : line.slice(0, colon);
      const value = colon === -1 ? "" : line.slice(colon + 1).replace(/^ /, "");
      if (field === "id") frame.id = value;
      else if (field === "event") frame.event = value;
      else if (field === "data") frame.data = frame.data === undefined ? value : `${frame.data}\n${value}`;
      else if (field === "retry" && /^\d+$/.test(value)) frame.retry = Number(value);
    }
    frames.push(frame);
  }
  return { frames, rest };
}

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
    const headers: Record<string, string> = {
      Authorization: `Bearer ${options.apiKey}`,
      Accept: "text/event-stream",
    };
    if (lastEventId) headers["Last-Event-ID"] = lastEventId;
    let response: Response;
    try {
      response = await send(new Request(`${base}/v1/events${query}`, { headers, signal: options.signal }));
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
    let buffered = "";
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        const { frames, rest } = parseFrames(buffered + value);
        buffered = rest;
        for (const frame of frames) {
          if (frame.retry !== undefined) retry = frame.retry;
          if (frame.event === undefined || frame.data === undefined) continue;
          const data: unknown = JSON.parse(frame.data);
          if (frame.event === "reset") {
            // What was missed cannot be replayed: start afresh after a refetch.
            lastEventId = undefined;
            yield { kind: "reset", data: data as ResetEvent };
            continue;
          }
          if (frame.id) lastEventId = frame.id;
          yield { kind: "change", id: frame.id ?? "", type: frame.event as EventType, data: data as ChangeEvent };
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
