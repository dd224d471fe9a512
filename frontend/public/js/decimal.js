// Amounts as the exchange keeps them: integers of 1e-8 units, here as BigInt, parsed from and
// formatted to decimal strings. No float ever decides an amount that is sent or compared;
// Number() is used only where a chart or a depth bar needs a screen position.

export const DECIMALS = 8;
const SCALE = 10n ** BigInt(DECIMALS);
const PLAIN_DECIMAL = /^(\d+)(?:\.(\d*))?$/;

export class AmountError extends Error {}

// "0.01" -> 1000000n; strict like the exchange: no sign, no exponent, at most 8 significant
// decimals (trailing zeros beyond are fine: "0.100000000").
export function parseUnits(text) {
  const trimmed = String(text).trim();
  const match = PLAIN_DECIMAL.exec(trimmed);
  if (!match || trimmed === "." || (match[1] === "" && !match[2])) {
    throw new AmountError(`"${text}" is not a plain decimal number`);
  }
  let frac = match[2] || "";
  if (frac.length > DECIMALS) {
    if (/[1-9]/.test(frac.slice(DECIMALS))) {
      throw new AmountError(`"${text}" has more than ${DECIMALS} decimals`);
    }
    frac = frac.slice(0, DECIMALS);
  }
  return BigInt(match[1]) * SCALE + BigInt(frac.padEnd(DECIMALS, "0"));
}

// How many decimals a step ("0.01000000") shows: 2.
export function decimalsOf(stepText) {
  const units = parseUnits(stepText);
  if (units === 0n) return DECIMALS;
  let decimals = DECIMALS;
  let rest = units;
  while (decimals > 0 && rest % 10n === 0n) {
    rest /= 10n;
    decimals -= 1;
  }
  return decimals;
}

// 123456000000n, 2 -> "1234.56" (truncates toward zero; the step's own decimals never lose a
// digit of an amount that is a multiple of the step).
export function formatUnits(units, decimals = DECIMALS) {
  const negative = units < 0n;
  const abs = negative ? -units : units;
  const whole = abs / SCALE;
  const frac = (abs % SCALE).toString().padStart(DECIMALS, "0").slice(0, decimals);
  const text = decimals > 0 ? `${whole}.${frac}` : `${whole}`;
  return negative ? `-${text}` : text;
}

// A decimal string from the API ("0.01000000") shown with a step's decimals.
export function formatText(text, decimals) {
  return formatUnits(parseUnits(text), decimals);
}

// Quote units for qty base units at price quote units per whole base unit (exact for amounts
// that pass the symbol's filters).
export function notional(price, qty) {
  return (price * qty) / SCALE;
}

export function isMultiple(units, step) {
  return step === 0n || units % step === 0n;
}

// Screen position only (chart points, depth bar widths).
export function toNumber(text) {
  return Number(text);
}
