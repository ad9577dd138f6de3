import type { RateLimitSnapshot } from '../../protocol/index.js';

/**
 * The provider's `x-ratelimit-*` response headers as a snapshot, or null when it sent none
 * (most non-OpenAI providers), so the turn can tell "no data" from "no limits left".
 */
export function rateLimitsFromHeaders(headers: Headers): RateLimitSnapshot | null {
  const number = (name: string): number | null => {
    const raw = headers.get(`x-ratelimit-${name}`);
    if (raw === null || raw.trim() === '') return null;
    const value = Number(raw);
    return Number.isFinite(value) ? value : null;
  };
  const text = (name: string): string | null => headers.get(`x-ratelimit-${name}`);
  const snapshot: RateLimitSnapshot = {
    limit_requests: number('limit-requests'),
    remaining_requests: number('remaining-requests'),
    reset_requests: text('reset-requests'),
    limit_tokens: number('limit-tokens'),
    remaining_tokens: number('remaining-tokens'),
    reset_tokens: text('reset-tokens'),
  };
  return Object.values(snapshot).every((value) => value === null) ? null : snapshot;
}
