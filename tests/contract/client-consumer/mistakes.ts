// Mistakes a frontend developer makes, each of which the installed package's
// types must refuse: `// @ts-expect-error` fails the compile if the line
// after it compiles.
import { createGatewayClient, must, select } from "@internal/gateway-client";

const gateway = createGatewayClient({ baseUrl: "http://127.0.0.1:8080", apiKey: API_KEY });

// @ts-expect-error an unknown route
await gateway.GET("/v1/no-such-route");

// @ts-expect-error a body field of the wrong type
await gateway.PATCH("/v1/account", { body: { city: 42 } });

// @ts-expect-error a path parameter left out
await gateway.GET("/v1/support/tickets/{number}", {});

// @ts-expect-error a method the route does not have
await gateway.DELETE("/v1/account");

const account = await must(gateway.GET("/v1/account"));
// @ts-expect-error a string read as a number
const wrong: number = account.first_name;


// @ts-expect-error a create without a required field (customer_id)
await gateway.POST("/v1/customers", { body: { start_billing_date: "2026-12-01", email: "a@example.com", first_name: "A", last_name: "B", address: "C 1", zipcode: "11111" } });

export { wrong };

const rows = await select(gateway, "/v1/billing/invoices", ["id", "total.amount"]);
// @ts-expect-error a member that was not selected
const notSelected = rows.items[0]?.status;

// @ts-expect-error select() with a name the route does not document
await select(gateway, "/v1/billing/invoices", ["id", "no_such_field"]);

export { notSelected };

// @ts-expect-error `fields` on GET, which answers whole: select() cuts and types
await gateway.GET("/v1/account", { params: { query: { fields: ["city"] } } });

// @ts-expect-error a key and a session at once: one way in
createGatewayClient({ baseUrl: "", apiKey: API_KEY, session: true });

// @ts-expect-error neither a key nor a session
createGatewayClient({ baseUrl: "" });
