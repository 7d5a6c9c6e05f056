// A frontend's view of the gateway, typed from the committed OpenAPI document.
// `api.d.ts` is generated, not committed:
//   tests/contract/node_modules/.bin/openapi-typescript openapi/openapi.json -o examples/typescript/api.d.ts
import type { components, paths } from "./api";

export type Account = components["schemas"]["Account"];
export type Problem = components["schemas"]["Problem"];
export type Money = components["schemas"]["Money"];
type InvoicePage =
  paths["/v1/billing/invoices"]["get"]["responses"][200]["content"]["application/json"];
type Overview = components["schemas"]["Overview"];
type NewCustomer = components["schemas"]["NewCustomer"];

/** A gateway problem as an exception that keeps the request id for support. */
export class GatewayError extends Error {
  constructor(readonly problem: Problem) {
    super(`${problem.title}: ${problem.detail ?? ""} (request ${problem.request_id ?? "?"})`);
  }
}

async function call<T>(base: string, key: string, path: string, init: RequestInit = {}): Promise<T> {
  const response = await fetch(`${base}${path}`, {
    ...init,
    headers: { Authorization: `Bearer ${key}`, "Content-Type": "application/json", ...init.headers },
  });
  if (!response.ok) throw new GatewayError((await response.json()) as Problem);
  return (await response.json()) as T;
}

export const fetchAccount = (base: string, key: string) => call<Account>(base, key, "/v1/account");

export function formatMoney(money: Money | null | undefined): string {
  return money ? `${money.amount} ${money.currency}` : "—";
}

/** The unpaid invoices of one page, as "number: amount". */
export async function unpaidInvoices(base: string, key: string): Promise<string[]> {
  const page = await call<InvoicePage>(base, key, "/v1/billing/invoices?status=unpaid&per_page=100");
  return page.items.map((invoice) => `${invoice.number ?? invoice.id}: ${formatMoney(invoice.total)}`);
}

/** A dashboard line, honest about sources that failed. */
export async function dashboardLine(base: string, key: string): Promise<string> {
  const overview = await call<Overview>(base, key, "/v1/overview");
  const who = overview.account?.name ?? "unknown account";
  const due = overview.unpaid_invoices?.totals.map(formatMoney).join(" + ") ?? "?";
  const missing = overview.errors.map((e) => e.source).join(", ");
  return `${who}: ${due} due${overview.partial ? ` (not shown: ${missing})` : ""}`;
}

/** Creates a customer; the idempotency key makes a retry after a timeout safe. */
export function createCustomer(base: string, key: string, customer: NewCustomer, idempotencyKey: string) {
  return call<components["schemas"]["Customer"]>(base, key, "/v1/customers", {
    method: "POST",
    body: JSON.stringify(customer),
    headers: { "Idempotency-Key": idempotencyKey },
  });
}
