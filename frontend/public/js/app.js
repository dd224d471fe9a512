// The trading page: wires the REST client, the live feeds and the DOM together. Everything on
// screen that is an amount comes from the exchange as a decimal string and is re-formatted
// with the symbol's tickSize / stepSize (decimal.js); nothing is computed in floating point.

import { Api, ApiError } from "./api.js";
import * as dec from "./decimal.js";
import { MarketFeed, UserFeed } from "./feeds.js";

const BOOK_DEPTH = 16;
const MAX_TRADES = 60;
const MAX_FILLS = 100;
const KEY_STORAGE = "bourse.apiKey";
const SECRET_STORAGE = "bourse.apiSecret";
const MARKET_STORAGE = "bourse.market";
const INTERVAL_STORAGE = "bourse.interval";
// The chart's intervals (Binance's names) and their length.
const INTERVAL_MS = { "1s": 1000, "1m": 60_000, "15m": 900_000, "1h": 3_600_000, "1d": 86_400_000 };

const $ = (id) => document.getElementById(id);

const state = {
  api: null,
  wsBase: "",
  markets: new Map(), // symbol -> market (filters, decimals)
  market: null,
  marketFeed: null,
  userFeed: null,
  side: "BUY",
  interval: "1m",
  type: "LIMIT",
  trades: [],
  balances: new Map(), // asset -> { free, locked } (decimal strings)
  orders: new Map(), // orderId -> open order
  fills: [],
  chart: null,
  candles: null,
  lastCandle: null,
  klinesKnown: false,
  book: null,
  bookFrame: 0,
};

// ---------------------------------------------------------------------------- start

async function main() {
  const config = await loadConfig();
  state.api = new Api(config.apiBase);
  state.wsBase = config.wsBase;
  bindForm();
  bindTabs();
  bindIntervals();
  bindKeys();
  try {
    await state.api.syncClock();
    const info = await state.api.get("/api/v3/exchangeInfo");
    for (const s of info.symbols) state.markets.set(s.symbol, marketFrom(s));
  } catch (error) {
    setMode("market-mode", "error", `error: ${error.message}`);
    return;
  }
  const select = $("market");
  for (const symbol of state.markets.keys()) {
    const option = document.createElement("option");
    option.value = symbol;
    const m = state.markets.get(symbol);
    option.textContent = `${m.base}/${m.quote}`;
    select.append(option);
  }
  select.addEventListener("change", () => selectMarket(select.value));
  const wanted = location.hash.slice(1).toUpperCase() || localStorage.getItem(MARKET_STORAGE);
  const first = state.markets.has(wanted) ? wanted : [...state.markets.keys()][0];
  await setupChart();
  selectMarket(first);
  const apiKey = localStorage.getItem(KEY_STORAGE);
  const secret = localStorage.getItem(SECRET_STORAGE);
  if (apiKey && secret) {
    $("api-key").value = apiKey;
    useKey(apiKey, secret);
  } else {
    showTab("keys");
  }
}

// Deployed behind CloudFront the API is another origin, named in config.json (written by
// `make frontend-upload`); served by the local gateway, the page and the API share one.
async function loadConfig() {
  let config = {};
  try {
    const response = await fetch("config.json", { cache: "no-store" });
    if (response.ok) config = await response.json();
  } catch {
    config = {};
  }
  const apiBase = config.apiBase || location.origin;
  const wsBase = config.wsBase || apiBase.replace(/^http/, "ws").replace(/\/$/, "");
  return { apiBase, wsBase };
}

function marketFrom(s) {
  const filters = Object.fromEntries(s.filters.map((f) => [f.filterType, f]));
  const tickSize = filters.PRICE_FILTER?.tickSize ?? "0.00000001";
  const stepSize = filters.LOT_SIZE?.stepSize ?? "0.00000001";
  const priceDecimals = dec.decimalsOf(tickSize);
  const qtyDecimals = dec.decimalsOf(stepSize);
  return {
    symbol: s.symbol,
    base: s.baseAsset,
    quote: s.quoteAsset,
    tickSize,
    stepSize,
    priceDecimals,
    qtyDecimals,
    totalDecimals: Math.min(dec.DECIMALS, priceDecimals + qtyDecimals),
    minNotional: filters.NOTIONAL?.minNotional ?? filters.MIN_NOTIONAL?.minNotional ?? null,
  };
}

// ---------------------------------------------------------------------------- market data

function selectMarket(symbol) {
  if (state.marketFeed) state.marketFeed.stop();
  const market = state.markets.get(symbol);
  const sameMarket = state.market === market; // an interval change keeps what was typed
  state.market = market;
  $("market").value = symbol;
  localStorage.setItem(MARKET_STORAGE, symbol);
  history.replaceState(null, "", `#${symbol}`);
  document.title = `${market.base}/${market.quote} · Bourse`;
  if (!sameMarket) state.trades = [];
  state.book = null;
  state.lastCandle = null;
  state.klinesKnown = false;
  if (state.candles) state.candles.setData([]);
  if (state.chart) {
    state.chart.applyOptions({ timeScale: { secondsVisible: state.interval === "1s" } });
  }
  if (state.candles) {
    state.candles.applyOptions({
      priceFormat: { type: "price", precision: market.priceDecimals, minMove: Number(market.tickSize) },
    });
  }
  renderTrades();
  renderBook();
  renderTicker({});
  $("price-unit").textContent = market.quote;
  $("qty-unit").textContent = market.base;
  if (!sameMarket) {
    $("price").value = "";
    $("qty").value = "";
  }
  updateOrderSummary();
  state.marketFeed = new MarketFeed(state.api, state.wsBase, symbol, state.interval, {
    onMode: (mode) => setMode("market-mode", mode, mode === "stream" ? "live stream" : mode),
    onBook: (book) => {
      state.book = book;
      if (!state.bookFrame) {
        state.bookFrame = requestAnimationFrame(() => {
          state.bookFrame = 0;
          renderBook();
        });
      }
    },
    onTrades: (trades, replace) => addTrades(trades, replace),
    onKlines: (klines, replace) => addKlines(klines, replace),
    onTicker: (ticker) => renderTicker(ticker),
  });
  state.marketFeed.start();
  if (state.userFeed) state.userFeed.refresh(symbol);
}

function renderBook() {
  const market = state.market;
  const levels = state.book ? state.book.levels(BOOK_DEPTH) : { bids: [], asks: [] };
  const sides = [
    [$("book-bids"), levels.bids],
    [$("book-asks"), levels.asks],
  ];
  let maxTotal = 1n;
  const totals = sides.map(([, rows]) => {
    let running = 0n;
    return rows.map(([, q]) => {
      running += dec.parseUnits(q);
      if (running > maxTotal) maxTotal = running;
      return running;
    });
  });
  sides.forEach(([element, rows], i) => {
    element.replaceChildren(
      ...rows.map(([p, q], j) => {
        const row = document.createElement("div");
        row.className = "level";
        row.dataset.price = p;
        const bar = document.createElement("span");
        bar.className = "bar";
        // Screen width only: the share of the deepest cumulative amount shown.
        bar.style.width = `${Number((totals[i][j] * 10000n) / maxTotal) / 100}%`;
        row.append(
          bar,
          cell(dec.formatText(p, market.priceDecimals), "price"),
          cell(dec.formatText(q, market.qtyDecimals), "qty"),
          cell(dec.formatUnits(totals[i][j], market.qtyDecimals), "sum"),
        );
        row.addEventListener("click", () => {
          $("price").value = dec.formatText(p, market.priceDecimals);
          updateOrderSummary();
        });
        return row;
      }),
    );
  });
  const spread = $("book-spread");
  if (levels.bids.length && levels.asks.length) {
    const bid = dec.parseUnits(levels.bids[0][0]);
    const ask = dec.parseUnits(levels.asks[0][0]);
    const last = state.trades[0];
    const shown = last ? dec.formatText(last.price, market.priceDecimals) : "—";
    spread.textContent = `${shown}  ·  spread ${dec.formatUnits(ask - bid, market.priceDecimals)}`;
    spread.className = `spread ${last && last.buyerMaker ? "down" : "up"}`;
  } else {
    spread.textContent = state.book ? "no orders on one side" : "—";
    spread.className = "spread";
  }
}

function addTrades(trades, replace) {
  const known = new Set(replace ? [] : state.trades.map((t) => t.id));
  const fresh = trades.filter((t) => !known.has(t.id));
  state.trades = (replace ? fresh : [...fresh, ...state.trades])
    .sort((a, b) => b.time - a.time || b.id - a.id)
    .slice(0, MAX_TRADES);
  renderTrades();
  if (fresh.length && state.trades[0]) {
    // The newest trade is the last price, whichever feed brings the ticker.
    $("ticker-last").textContent = dec.formatText(state.trades[0].price, state.market.priceDecimals);
  }
  if (!state.klinesKnown) {
    // No kline history nor stream here (yet): candles from the trades this page has seen.
    for (const t of [...fresh].reverse()) candleFromTrade(t);
  }
}

function renderTrades() {
  const market = state.market;
  $("trades").replaceChildren(
    ...state.trades.map((t) => {
      const row = document.createElement("div");
      row.className = `trade ${t.buyerMaker ? "sell-trade" : "buy-trade"}`;
      row.append(
        cell(dec.formatText(t.price, market.priceDecimals), "price"),
        cell(dec.formatText(t.qty, market.qtyDecimals), "qty"),
        cell(clock(t.time), "time"),
      );
      return row;
    }),
  );
}

function renderTicker(t) {
  const market = state.market;
  const price = (text) => (text ? dec.formatText(text, market.priceDecimals) : "—");
  const newest = state.trades[0];
  // Before the record has a trade its ticker says 0: the trades seen here say more.
  const last = t.last && dec.parseUnits(t.last) !== 0n ? t.last : newest?.price;
  $("ticker-last").textContent = price(last);
  $("ticker-high").textContent = price(t.high);
  $("ticker-low").textContent = price(t.low);
  $("ticker-volume").textContent = t.volume
    ? `${dec.formatText(t.volume, market.qtyDecimals)} ${market.base}`
    : "—";
  const change = $("ticker-change");
  if (t.change !== undefined) {
    const negative = t.change.startsWith("-");
    const sign = negative ? "" : "+";
    const amount = negative ? `-${price(t.change.slice(1))}` : price(t.change);
    change.textContent = `${sign}${amount} (${sign}${t.changePercent}%)`;
    change.className = `value ${negative ? "down" : "up"}`;
  } else {
    change.textContent = "—";
    change.className = "value";
  }
}

// ---------------------------------------------------------------------------- chart

async function setupChart() {
  let charts;
  try {
    charts = await import("../vendor/lightweight-charts.mjs");
  } catch {
    $("chart").textContent = "Chart library missing: run `make frontend`.";
    return;
  }
  const element = $("chart");
  state.chart = charts.createChart(element, {
    autoSize: true,
    layout: {
      background: { type: charts.ColorType.Solid, color: "#161b22" },
      textColor: "#7d8793",
    },
    grid: { vertLines: { color: "#1f252d" }, horzLines: { color: "#1f252d" } },
    timeScale: {
      timeVisible: true,
      secondsVisible: false,
      borderColor: "#262d36",
      barSpacing: 10,
      rightOffset: 4,
    },
    rightPriceScale: { borderColor: "#262d36" },
  });
  state.candles = state.chart.addSeries(charts.CandlestickSeries, {
    upColor: "#1fb877",
    downColor: "#ef4d5e",
    borderVisible: false,
    wickUpColor: "#1fb877",
    wickDownColor: "#ef4d5e",
  });
}

// Chart coordinates are numbers by nature; these values never go back to the exchange.
function bar(k) {
  return {
    time: Math.floor(k.openTime / 1000),
    open: Number(k.open),
    high: Number(k.high),
    low: Number(k.low),
    close: Number(k.close),
  };
}

function addKlines(klines, replace) {
  // An empty history (a record with no trade yet) leaves the candles to the trades seen here.
  if (!state.candles || klines.length === 0) return;
  state.klinesKnown = true;
  if (replace) {
    const bars = klines.map(bar);
    state.candles.setData(bars);
    state.lastCandle = bars.length ? bars[bars.length - 1] : null;
    return;
  }
  for (const k of klines) {
    const b = bar(k);
    if (state.lastCandle && b.time < state.lastCandle.time) continue;
    state.candles.update(b);
    state.lastCandle = b;
  }
}

function candleFromTrade(t) {
  if (!state.candles) return;
  const length = INTERVAL_MS[state.interval];
  const time = (Math.floor(t.time / length) * length) / 1000;
  const price = Number(t.price);
  const last = state.lastCandle;
  if (last && time < last.time) return;
  const b =
    last && last.time === time
      ? { ...last, high: Math.max(last.high, price), low: Math.min(last.low, price), close: price }
      : { time, open: price, high: price, low: price, close: price };
  state.candles.update(b);
  state.lastCandle = b;
}

// ---------------------------------------------------------------------------- order entry

function bindForm() {
  for (const button of document.querySelectorAll(".side")) {
    button.addEventListener("click", () => {
      state.side = button.dataset.side;
      for (const b of document.querySelectorAll(".side")) b.classList.toggle("active", b === button);
      const place = $("place-order");
      place.className = `place ${state.side === "BUY" ? "buy" : "sell"}`;
      updateOrderSummary();
    });
  }
  for (const button of document.querySelectorAll(".type")) {
    button.addEventListener("click", () => {
      state.type = button.dataset.type;
      for (const b of document.querySelectorAll(".type")) b.classList.toggle("active", b === button);
      $("price-field").hidden = state.type === "MARKET";
      updateOrderSummary();
    });
  }
  $("price").addEventListener("input", updateOrderSummary);
  $("qty").addEventListener("input", updateOrderSummary);
  $("order-form").addEventListener("submit", (event) => {
    event.preventDefault();
    placeOrder();
  });
}

function updateOrderSummary() {
  const market = state.market;
  if (!market) return;
  const side = state.side === "BUY" ? "Buy" : "Sell";
  $("place-order").textContent = `${side} ${market.base}`;
  const asset = state.side === "BUY" ? market.quote : market.base;
  const balance = state.balances.get(asset);
  $("order-available").textContent = balance ? `${balance.free} ${asset}` : `— ${asset}`;
  let total = "—";
  if (state.type === "LIMIT") {
    try {
      const value = dec.notional(dec.parseUnits($("price").value), dec.parseUnits($("qty").value));
      total = `${formatTotal(value, market)} ${market.quote}`;
    } catch {
      total = "—";
    }
  }
  $("order-total").textContent = total;
}

// Exact (price and amount decimals together), but no zeros past the price's own decimals.
function formatTotal(units, market) {
  const text = dec.formatUnits(units, market.totalDecimals);
  const keep = text.length - (market.totalDecimals - market.priceDecimals);
  return (text.slice(0, keep) + text.slice(keep).replace(/0+$/, "")).replace(/\.$/, "");
}

// The exact value typed, as a canonical decimal ("0.0100" -> "0.01"): never rounded to the
// step here, so an off-step amount reaches the exchange and comes back with its own message.
function canonical(text, what) {
  if (!text.trim()) throw new dec.AmountError(`Enter the ${what}.`);
  const units = dec.parseUnits(text);
  if (units === 0n) throw new dec.AmountError(`The ${what} must be more than zero.`);
  return dec.formatUnits(units).replace(/\.?0+$/, "");
}

function newClientOrderId() {
  const bytes = crypto.getRandomValues(new Uint8Array(8));
  return `web${Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("")}`;
}

async function placeOrder() {
  const market = state.market;
  if (!state.api.credentials) {
    say("order-message", "error", "Enter an API key and secret first (API key tab).");
    showTab("keys");
    return;
  }
  const params = {
    symbol: market.symbol,
    side: state.side,
    type: state.type,
    newClientOrderId: newClientOrderId(),
    newOrderRespType: "RESULT",
  };
  try {
    params.quantity = canonical($("qty").value, "amount");
    if (state.type === "LIMIT") {
      params.timeInForce = "GTC";
      params.price = canonical($("price").value, "price");
    }
  } catch (error) {
    say("order-message", "error", error.message);
    return;
  }
  const button = $("place-order");
  button.disabled = true;
  say("order-message", "", "Sending…");
  try {
    const order = await state.api.signed("POST", "/api/v3/order", params);
    const at = order.type === "MARKET" ? "at market" : `at ${params.price}`;
    say(
      "order-message",
      "ok",
      `Order ${order.orderId} ${order.status}: ${order.side} ${params.quantity} ${market.base} ${at}`,
    );
    if (order.status === "NEW" || order.status === "PARTIALLY_FILLED") {
      state.orders.set(order.orderId, order);
      renderOrders();
    }
  } catch (error) {
    say("order-message", "error", rejection(error));
  } finally {
    button.disabled = false;
    if (state.userFeed) state.userFeed.refresh(market.symbol);
  }
}

function rejection(error) {
  if (error instanceof ApiError && error.code) return `Rejected: ${error.message} (${error.code})`;
  return `Rejected: ${error.message}`;
}

async function cancelOrder(order) {
  try {
    const canceled = await state.api.signed("DELETE", "/api/v3/order", {
      symbol: order.symbol,
      orderId: order.orderId,
    });
    state.orders.delete(order.orderId);
    renderOrders();
    say("order-message", "ok", `Order ${canceled.orderId} ${canceled.status}.`);
  } catch (error) {
    say("order-message", "error", rejection(error));
  } finally {
    if (state.userFeed) state.userFeed.refresh(state.market.symbol);
  }
}

// ---------------------------------------------------------------------------- account

function bindKeys() {
  $("keys-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const apiKey = $("api-key").value.trim();
    const secret = $("api-secret").value.trim();
    if (!apiKey || !secret) {
      say("keys-message", "error", "Paste both the API key and its secret.");
      return;
    }
    localStorage.setItem(KEY_STORAGE, apiKey);
    localStorage.setItem(SECRET_STORAGE, secret);
    $("api-secret").value = "";
    useKey(apiKey, secret);
  });
  $("forget-keys").addEventListener("click", () => {
    localStorage.removeItem(KEY_STORAGE);
    localStorage.removeItem(SECRET_STORAGE);
    $("api-key").value = "";
    $("api-secret").value = "";
    if (state.userFeed) state.userFeed.stop();
    state.userFeed = null;
    state.api.setCredentials(null);
    state.balances.clear();
    state.orders.clear();
    state.fills = [];
    renderAccount();
    setMode("user-mode", "off", "no key");
    say("keys-message", "ok", "Key forgotten.");
  });
}

function useKey(apiKey, secret) {
  if (state.userFeed) state.userFeed.stop();
  state.api.setCredentials({ apiKey, secret });
  state.balances.clear();
  state.orders.clear();
  state.fills = [];
  renderAccount();
  let checked = false;
  state.userFeed = new UserFeed(state.api, state.wsBase, {
    onMode: (mode) => setMode("user-mode", mode, mode === "stream" ? "live stream" : mode),
    onBalances: (balances, replace) => {
      if (replace) state.balances.clear();
      for (const b of balances) {
        if (dec.parseUnits(b.free) === 0n && dec.parseUnits(b.locked) === 0n) {
          state.balances.delete(b.asset);
        } else {
          state.balances.set(b.asset, { free: b.free, locked: b.locked });
        }
      }
      if (!checked) {
        checked = true;
        say("keys-message", "ok", `Key ${apiKey.slice(0, 8)}… works.`);
        showTab("open-orders");
      }
      renderBalances();
      updateOrderSummary();
    },
    onOrders: (orders) => {
      state.orders = new Map(orders.map((o) => [o.orderId, o]));
      renderOrders();
    },
    onOrderUpdate: (e) => {
      if (e.X === "NEW" || e.X === "PARTIALLY_FILLED") {
        state.orders.set(e.i, {
          symbol: e.s,
          orderId: e.i,
          side: e.S,
          type: e.o,
          price: e.p,
          origQty: e.q,
          executedQty: e.z,
          status: e.X,
          time: e.O,
        });
      } else {
        state.orders.delete(e.i);
      }
      renderOrders();
    },
    onFills: (fills, replace) => {
      const known = new Set(replace ? [] : state.fills.map((f) => f.id));
      const fresh = fills.filter((f) => !known.has(f.id));
      state.fills = (replace ? fresh : [...fresh, ...state.fills])
        .sort((a, b) => b.time - a.time)
        .slice(0, MAX_FILLS);
      renderFills();
    },
    onError: (error) => {
      setMode("user-mode", "error", "error");
      say("keys-message", "error", rejection(error));
    },
  });
  state.userFeed.start();
  if (state.market) state.userFeed.refresh(state.market.symbol);
}

function renderAccount() {
  renderBalances();
  renderOrders();
  renderFills();
  updateOrderSummary();
}

function renderBalances() {
  const assets = [...state.balances.keys()].sort();
  $("balances").replaceChildren(
    ...assets.map((asset) => {
      const b = state.balances.get(asset);
      const row = document.createElement("tr");
      row.dataset.asset = asset;
      row.append(cell(asset, "asset", "td"), cell(b.free, "free", "td"), cell(b.locked, "locked", "td"));
      return row;
    }),
  );
}

function renderOrders() {
  const orders = [...state.orders.values()].sort((a, b) => b.time - a.time);
  $("open-orders").replaceChildren(
    ...orders.map((o) => {
      const market = state.markets.get(o.symbol);
      const row = document.createElement("tr");
      row.dataset.orderId = String(o.orderId);
      const cancel = document.createElement("button");
      cancel.type = "button";
      cancel.className = "cancel";
      cancel.textContent = "Cancel";
      cancel.addEventListener("click", () => {
        cancel.disabled = true;
        cancelOrder(o);
      });
      const action = document.createElement("td");
      action.append(cancel);
      row.append(
        cell(clock(o.time), "time", "td"),
        cell(market ? `${market.base}/${market.quote}` : o.symbol, "market", "td"),
        cell(o.side, o.side === "BUY" ? "buy" : "sell", "td"),
        cell(o.type, "type", "td"),
        cell(market ? dec.formatText(o.price, market.priceDecimals) : o.price, "price", "td"),
        cell(market ? dec.formatText(o.origQty, market.qtyDecimals) : o.origQty, "qty", "td"),
        cell(market ? dec.formatText(o.executedQty, market.qtyDecimals) : o.executedQty, "filled", "td"),
        cell(o.status, "status", "td"),
        action,
      );
      return row;
    }),
  );
  $("open-orders-empty").hidden = orders.length > 0;
}

function renderFills() {
  $("fills").replaceChildren(
    ...state.fills.map((f) => {
      const market = state.markets.get(f.symbol);
      const row = document.createElement("tr");
      row.append(
        cell(clock(f.time), "time", "td"),
        cell(market ? `${market.base}/${market.quote}` : f.symbol, "market", "td"),
        cell(f.side, f.side === "BUY" ? "buy" : "sell", "td"),
        cell(market ? dec.formatText(f.price, market.priceDecimals) : f.price, "price", "td"),
        cell(market ? dec.formatText(f.qty, market.qtyDecimals) : f.qty, "qty", "td"),
        cell(`${f.fee} ${f.feeAsset ?? ""}`, "fee", "td"),
      );
      return row;
    }),
  );
}

// ---------------------------------------------------------------------------- small things

function bindIntervals() {
  const saved = localStorage.getItem(INTERVAL_STORAGE);
  if (saved in INTERVAL_MS) state.interval = saved;
  for (const button of document.querySelectorAll(".interval")) {
    button.classList.toggle("active", button.dataset.interval === state.interval);
    button.addEventListener("click", () => {
      state.interval = button.dataset.interval;
      localStorage.setItem(INTERVAL_STORAGE, state.interval);
      for (const b of document.querySelectorAll(".interval")) b.classList.toggle("active", b === button);
      if (state.market) selectMarket(state.market.symbol);
    });
  }
}

function bindTabs() {
  for (const tab of document.querySelectorAll(".tab")) {
    tab.addEventListener("click", () => showTab(tab.dataset.tab));
  }
}

function showTab(name) {
  for (const tab of document.querySelectorAll(".tab")) {
    tab.classList.toggle("active", tab.dataset.tab === name);
  }
  for (const body of document.querySelectorAll(".tab-body")) {
    body.classList.toggle("active", body.id === `tab-${name}`);
  }
}

function cell(text, className, tag = "span") {
  const element = document.createElement(tag);
  element.className = className;
  element.textContent = text;
  return element;
}

function clock(ms) {
  return ms ? new Date(Number(ms)).toLocaleTimeString([], { hour12: false }) : "—";
}

function say(id, kind, text) {
  const element = $(id);
  element.className = `message ${kind}`;
  element.textContent = text;
}

function setMode(id, mode, text) {
  const element = $(id);
  element.dataset.mode = mode;
  element.textContent = text;
}

main();
