/** Rough token count: 4 characters a token. Good enough to budget; providers count exactly. */
export function approxTokens(text: string): number {
  return Math.ceil(text.length / 4);
}

/** Fewest characters worth keeping on each side; less than that is noise, not context. */
const MIN_KEPT_CHARS = 16;

/**
 * `text` cut in the middle to at most `maxTokens` (approximate) tokens, with a marker saying
 * how much was left out; the start (the request) and the end (often the actual question) are
 * what matter most in a long message. Null when the budget is too small to keep anything
 * useful.
 */
export function truncateMiddleToTokens(text: string, maxTokens: number): string | null {
  if (approxTokens(text) <= maxTokens) return text;
  const maxChars = Math.max(0, Math.floor(maxTokens)) * 4;
  // Sized for the largest count it could show, so the result never exceeds maxChars.
  const marker = (cut: number) => `\n[… ${cut} characters cut from the middle of this message …]\n`;
  const keep = maxChars - marker(text.length).length;
  if (keep < MIN_KEPT_CHARS) return null;
  let headEnd = Math.ceil(keep / 2);
  let tailStart = text.length - Math.floor(keep / 2);
  // Never split a surrogate pair.
  if (isHighSurrogate(text.charCodeAt(headEnd - 1))) headEnd -= 1;
  if (isLowSurrogate(text.charCodeAt(tailStart))) tailStart += 1;
  return `${text.slice(0, headEnd)}${marker(tailStart - headEnd)}${text.slice(tailStart)}`;
}

function isHighSurrogate(code: number): boolean {
  return code >= 0xd800 && code <= 0xdbff;
}

function isLowSurrogate(code: number): boolean {
  return code >= 0xdc00 && code <= 0xdfff;
}
