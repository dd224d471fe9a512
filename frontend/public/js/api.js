// The exchange's public REST API, signed in the browser exactly as Binance clients sign:
// HMAC-SHA256 (WebCrypto) with the API secret over the urlencoded parameters — the query
// string for GET/DELETE, the form body for POST — with `signature` appended last. Only the API
// key leaves the page, as the X-MBX-APIKEY header; the secret never does.

const encoder = new TextEncoder();

export class ApiError extends Error {
  constructor(status, code, msg) {
    super(msg);
    this.status = status;
    this.code = code;
  }
}

// Binance's encoding of a parameter list (what urllib.parse.urlencode and the SDKs send):
// spaces as "+", everything outside letters, digits and "-_.~" percent-encoded.
export function encodeParams(params) {
  return Object.entries(params)
    .filter(([, value]) => value !== undefined && value !== null && value !== "")
    .map(([name, value]) => `${encodeValue(name)}=${encodeValue(String(value))}`)
    .join("&");
}

function encodeValue(text) {
  return encodeURIComponent(text)
    .replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`)
    .replace(/%20/g, "+");
}

export async function hmacSha256Hex(secret, message) {
  const key = await crypto.subtle.importKey(
    "raw",
    encoder.encode(secret),
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign"],
  );
  const signature = await crypto.subtle.sign("HMAC", key, encoder.encode(message));
  return Array.from(new Uint8Array(signature), (b) => b.toString(16).padStart(2, "0")).join("");
}

export class Api {
  constructor(baseUrl) {
    this.baseUrl = baseUrl.replace(/\/$/, "");
    this.credentials = null; // { apiKey, secret }
    this.clockOffsetMs = 0; // server time - local time, so `timestamp` fits recvWindow
  }

  setCredentials(credentials) {
    this.credentials = credentials;
  }

  async syncClock() {
    const before = Date.now();
    const { serverTime } = await this.get("/api/v3/time");
    const after = Date.now();
    this.clockOffsetMs = serverTime - Math.round((before + after) / 2);
  }

  async get(path, params = {}) {
    const query = encodeParams(params);
    return this.#send("GET", query ? `${path}?${query}` : path, {});
  }

  // USER_STREAM endpoints: the key header, no signature (as on Binance).
  async keyed(method, path, params = {}) {
    const query = encodeParams(params);
    return this.#send(method, query ? `${path}?${query}` : path, this.#keyHeader());
  }

  async signed(method, path, params = {}) {
    const headers = this.#keyHeader();
    const payload = encodeParams({
      ...params,
      // Twice Binance's default: the clock is synced at load, but a request can wait a few
      // seconds on a busy exchange before it is checked.
      recvWindow: 10000,
      timestamp: Date.now() + this.clockOffsetMs,
    });
    const signature = await hmacSha256Hex(this.credentials.secret, payload);
    const signedPayload = `${payload}&signature=${signature}`;
    if (method === "POST") {
      headers["Content-Type"] = "application/x-www-form-urlencoded";
      return this.#send(method, path, headers, signedPayload);
    }
    return this.#send(method, `${path}?${signedPayload}`, headers);
  }

  #keyHeader() {
    if (!this.credentials) throw new ApiError(0, 0, "Enter an API key and secret first.");
    return { "X-MBX-APIKEY": this.credentials.apiKey };
  }

  async #send(method, pathAndQuery, headers, body) {
    let response;
    try {
      response = await fetch(this.baseUrl + pathAndQuery, { method, headers, body });
    } catch (error) {
      throw new ApiError(0, 0, `The exchange did not answer (${error.message}).`);
    }
    const text = await response.text();
    let data = null;
    try {
      data = text ? JSON.parse(text) : null;
    } catch {
      data = null;
    }
    if (!response.ok) {
      // Binance's errors are {"code", "msg"}; API Gateway's own are {"message"}.
      const code = data && typeof data.code === "number" ? data.code : 0;
      const msg =
        (data && (data.msg || data.message)) || `HTTP ${response.status} ${response.statusText}`;
      throw new ApiError(response.status, code, msg);
    }
    return data;
  }
}
