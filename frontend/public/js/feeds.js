// Live data for the page: Binance's WebSocket streams first (a combined market stream per
// symbol, the user data stream on a listen key), REST polling only while a stream cannot be
// had. Every payload is normalised here, so the page does not care which one delivered it.

import { ApiError } from "./api.js";
import { LocalBook } from "./book.js";

const POLL_MS = 1000;
const STREAM_RETRY_MS = 10000; // while polling, how often a stream is tried again
const RESYNC_MIN_MS = 1000;
const LISTEN_KEY_KEEPALIVE_MS = 30 * 60 * 1000;

// Endpoints this deployment does not have (404) are not asked again.
const missing = new Set();

async function optional(call, path) {
  if (missing.has(path)) return null;
  try {
    return await call();
  } catch (error) {
    if (error instanceof ApiError && error.status === 404) missing.add(path);
    return null;
  }
}

export function tradeFromRest(t) {
  return { id: t.id, price: t.price, qty: t.qty, time: t.time, buyerMaker: t.isBuyerMaker };
}

function tradeFromStream(d) {
  return { id: d.t, price: d.p, qty: d.q, time: d.T, buyerMaker: d.m };
}

function klineFromRest(k) {
  return { openTime: k[0], open: k[1], high: k[2], low: k[3], close: k[4], volume: k[5] };
}

function klineFromStream(k) {
  return { openTime: k.t, open: k.o, high: k.h, low: k.l, close: k.c, volume: k.v };
}

function tickerFromRest(t) {
  return {
    last: t.lastPrice,
    change: t.priceChange,
    changePercent: t.priceChangePercent,
    high: t.highPrice,
    low: t.lowPrice,
    volume: t.volume,
    quoteVolume: t.quoteVolume,
  };
}

function tickerFromStream(d) {
  return {
    last: d.c,
    change: d.p,
    changePercent: d.P,
    high: d.h,
    low: d.l,
    volume: d.v,
    quoteVolume: d.q,
  };
}

export class MarketFeed {
  // handlers: onBook(LocalBook), onTrades([trade], replace), onKlines([kline], replace),
  // onTicker(ticker), onMode("stream" | "polling" | "connecting"); interval: Binance's ("1m")
  constructor(api, wsBase, symbol, interval, handlers) {
    this.api = api;
    this.wsBase = wsBase;
    this.symbol = symbol;
    this.interval = interval;
    this.h = handlers;
    this.book = new LocalBook();
    this.stopped = false;
    this.ws = null;
    this.pollTimer = null;
    this.retryTimer = null;
    this.lastResync = 0;
  }

  start() {
    this.h.onMode("connecting");
    this.#loadHistory();
    this.#connect();
  }

  stop() {
    this.stopped = true;
    clearInterval(this.pollTimer);
    clearTimeout(this.retryTimer);
    if (this.ws) this.ws.close();
  }

  #connect() {
    if (this.stopped) return;
    const s = this.symbol.toLowerCase();
    const kline = `${s}@kline_${this.interval}`;
    const streams = [`${s}@depth@100ms`, `${s}@trade`, kline, `${s}@ticker`];
    let opened = false;
    let ws;
    try {
      ws = new WebSocket(`${this.wsBase}/stream?streams=${streams.join("/")}`);
    } catch {
      this.#startPolling();
      return;
    }
    this.ws = ws;
    ws.onopen = () => {
      opened = true;
      this.#stopPolling();
      this.h.onMode("stream");
      this.book.reset();
      this.#resyncBook();
    };
    ws.onmessage = (message) => this.#onMessage(JSON.parse(message.data));
    ws.onclose = () => {
      if (this.stopped || this.ws !== ws) return;
      this.ws = null;
      if (opened) {
        // A stream that worked and dropped: reconnect at once, poll meanwhile.
        this.#startPolling();
        this.retryTimer = setTimeout(() => this.#connect(), POLL_MS);
      } else {
        this.#startPolling();
        this.retryTimer = setTimeout(() => this.#connect(), STREAM_RETRY_MS);
      }
    };
  }

  #onMessage({ stream, data }) {
    if (this.stopped || !stream || !data) return;
    if (stream.includes("@depth")) {
      if (!this.book.apply(data)) this.#resyncBook();
      else if (this.book.synced) this.h.onBook(this.book);
    } else if (stream.endsWith("@trade")) {
      this.h.onTrades([tradeFromStream(data)], false);
    } else if (stream.includes("@kline_")) {
      this.h.onKlines([klineFromStream(data.k)], false);
    } else if (stream.endsWith("@ticker")) {
      this.h.onTicker(tickerFromStream(data));
    }
  }

  async #resyncBook() {
    const now = Date.now();
    const wait = Math.max(0, this.lastResync + RESYNC_MIN_MS - now);
    this.lastResync = now + wait;
    if (wait) await new Promise((resolve) => setTimeout(resolve, wait));
    try {
      const snapshot = await this.api.get("/api/v3/depth", { symbol: this.symbol, limit: 1000 });
      if (this.stopped) return;
      if (!this.book.loadSnapshot(snapshot)) this.#resyncBook();
      else this.h.onBook(this.book);
    } catch {
      if (!this.stopped) setTimeout(() => this.#resyncBook(), RESYNC_MIN_MS);
    }
  }

  async #loadHistory() {
    const symbol = this.symbol;
    const trades = await optional(
      () => this.api.get("/api/v3/trades", { symbol, limit: 50 }),
      "/api/v3/trades",
    );
    if (trades && !this.stopped) this.h.onTrades(trades.map(tradeFromRest), true);
    const klines = await optional(
      () => this.api.get("/api/v3/klines", { symbol, interval: this.interval, limit: 300 }),
      "/api/v3/klines",
    );
    if (klines && !this.stopped) this.h.onKlines(klines.map(klineFromRest), true);
    await this.#pollTicker();
  }

  async #pollTicker() {
    const symbol = this.symbol;
    const ticker = await optional(
      () => this.api.get("/api/v3/ticker/24hr", { symbol }),
      "/api/v3/ticker/24hr",
    );
    if (this.stopped) return;
    if (ticker) {
      this.h.onTicker(tickerFromRest(ticker));
      return;
    }
    const price = await optional(
      () => this.api.get("/api/v3/ticker/price", { symbol }),
      "/api/v3/ticker/price",
    );
    if (price && !this.stopped) this.h.onTicker({ last: price.price });
  }

  #startPolling() {
    if (this.pollTimer || this.stopped) return;
    this.h.onMode("polling");
    let round = 0;
    const poll = async () => {
      round += 1;
      const symbol = this.symbol;
      const depth = await optional(
        () => this.api.get("/api/v3/depth", { symbol, limit: 100 }),
        "/api/v3/depth",
      );
      if (this.stopped || !this.pollTimer) return;
      if (depth) {
        this.book.reset();
        this.book.loadSnapshot(depth);
        this.h.onBook(this.book);
      }
      const trades = await optional(
        () => this.api.get("/api/v3/trades", { symbol, limit: 50 }),
        "/api/v3/trades",
      );
      if (trades && !this.stopped) this.h.onTrades(trades.map(tradeFromRest), true);
      if (round % 2 === 0) await this.#pollTicker();
      if (round % 5 === 0) {
        const klines = await optional(
          () => this.api.get("/api/v3/klines", { symbol, interval: this.interval, limit: 300 }),
          "/api/v3/klines",
        );
        if (klines && !this.stopped) this.h.onKlines(klines.map(klineFromRest), true);
      }
    };
    this.pollTimer = setInterval(poll, POLL_MS);
    poll();
  }

  #stopPolling() {
    clearInterval(this.pollTimer);
    this.pollTimer = null;
  }
}

export class UserFeed {
  // handlers: onBalances([{asset, free, locked}], replace), onOrders([order]) (a full list),
  // onOrderUpdate(executionReport), onFills([fill], replace), onMode(text)
  constructor(api, wsBase, handlers) {
    this.api = api;
    this.wsBase = wsBase;
    this.h = handlers;
    this.stopped = false;
    this.ws = null;
    this.pollTimer = null;
    this.keepaliveTimer = null;
    this.retryTimer = null;
    this.listenKey = null;
  }

  start() {
    this.h.onMode("connecting");
    this.refresh();
    this.#connect();
  }

  stop() {
    this.stopped = true;
    clearInterval(this.pollTimer);
    clearInterval(this.keepaliveTimer);
    clearTimeout(this.retryTimer);
    if (this.ws) this.ws.close();
    if (this.listenKey) {
      this.api
        .keyed("DELETE", "/api/v3/userDataStream", { listenKey: this.listenKey })
        .catch(() => {});
    }
  }

  // Balances, open orders and recent fills over REST: at start, after each order action, and
  // on every poll while no user stream is open.
  async refresh(symbol) {
    try {
      const account = await this.api.signed("GET", "/api/v3/account", {
        omitZeroBalances: "true",
      });
      if (!this.stopped) this.h.onBalances(account.balances, true);
      const orders = await this.api.signed("GET", "/api/v3/openOrders", {});
      if (!this.stopped) this.h.onOrders(orders);
    } catch (error) {
      if (!this.stopped) this.h.onError(error);
      return;
    }
    if (symbol) {
      const fills = await optional(
        () => this.api.signed("GET", "/api/v3/myTrades", { symbol, limit: 50 }),
        "/api/v3/myTrades",
      );
      if (fills && !this.stopped) this.h.onFills(fills.map((t) => fillFromRest(t)), true);
    }
  }

  async #connect() {
    if (this.stopped) return;
    let listenKey;
    try {
      ({ listenKey } = await this.api.keyed("POST", "/api/v3/userDataStream"));
    } catch {
      this.#startPolling();
      this.retryTimer = setTimeout(() => this.#connect(), STREAM_RETRY_MS);
      return;
    }
    if (this.stopped) return;
    this.listenKey = listenKey;
    let opened = false;
    const ws = new WebSocket(`${this.wsBase}/ws/${listenKey}`);
    this.ws = ws;
    ws.onopen = () => {
      opened = true;
      this.#stopPolling();
      this.h.onMode("stream");
      this.refresh();
      clearInterval(this.keepaliveTimer);
      this.keepaliveTimer = setInterval(() => {
        this.api.keyed("PUT", "/api/v3/userDataStream", { listenKey }).catch(() => {});
      }, LISTEN_KEY_KEEPALIVE_MS);
    };
    ws.onmessage = (message) => this.#onEvent(JSON.parse(message.data));
    ws.onclose = () => {
      if (this.stopped || this.ws !== ws) return;
      this.ws = null;
      this.#startPolling();
      this.retryTimer = setTimeout(() => this.#connect(), opened ? POLL_MS : STREAM_RETRY_MS);
    };
  }

  #onEvent(event) {
    if (this.stopped) return;
    // A combined-stream wrapper, if the server sends one, carries the event in `data`.
    const e = event.data && event.stream ? event.data : event;
    if (e.e === "outboundAccountPosition") {
      this.h.onBalances(
        e.B.map((b) => ({ asset: b.a, free: b.f, locked: b.l })),
        false,
      );
    } else if (e.e === "executionReport") {
      this.h.onOrderUpdate(e);
      if (e.x === "TRADE") this.h.onFills([fillFromReport(e)], false);
    } else if (e.e === "listenKeyExpired") {
      this.ws?.close();
    }
  }

  #startPolling() {
    if (this.pollTimer || this.stopped) return;
    this.h.onMode("polling");
    this.pollTimer = setInterval(() => this.refresh(), 2 * POLL_MS);
  }

  #stopPolling() {
    clearInterval(this.pollTimer);
    this.pollTimer = null;
  }
}

function fillFromRest(t) {
  return {
    id: `${t.symbol}-${t.id}`,
    symbol: t.symbol,
    side: t.isBuyer ? "BUY" : "SELL",
    price: t.price,
    qty: t.qty,
    fee: t.commission,
    feeAsset: t.commissionAsset,
    time: t.time,
  };
}

function fillFromReport(e) {
  return {
    id: `${e.s}-${e.t}`,
    symbol: e.s,
    side: e.S,
    price: e.L,
    qty: e.l,
    fee: e.n,
    feeAsset: e.N,
    time: e.T,
  };
}
