// What the README's examples take from the frontend around them.
declare const API_KEY: string;
declare const baseUrl: string;
declare const apiKey: string;
declare function showFieldErrors(messages: Record<string, string>): void;
declare function refetchEverythingShown(): Promise<void>;
declare function patchTicketRow(id: number, changed: Record<string, unknown>): void;
