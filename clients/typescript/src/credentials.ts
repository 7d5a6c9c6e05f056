// How a client is admitted, for calls and for the change stream.

/** How the client is admitted: an API key, or a person's session cookie. */
export type Credentials =
  | {
      /** The API key, sent as `Authorization: Bearer <key>`. */
      apiKey: string;
      session?: never;
    }
  | {
      /**
       * A person logged in through the gateway (`/auth/login`): the browser
       * sends the session cookie (`credentials: "include"`), every unsafe
       * method carries `X-CSRF: 1`, and a 401 is a {@link SignedOut}.
       */
      session: true;
      apiKey?: never;
    };
