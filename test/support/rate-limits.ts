/** Rate-limit headers as a provider sends them, and the snapshot troupe must make of them. */
export const RATE_LIMIT_HEADERS: Readonly<Record<string, string>> = {
  'x-ratelimit-limit-requests': '500',
  'x-ratelimit-remaining-requests': '499',
  'x-ratelimit-reset-requests': '120ms',
  'x-ratelimit-limit-tokens': '30000',
  'x-ratelimit-remaining-tokens': '29000',
  'x-ratelimit-reset-tokens': '2s',
};

export const RATE_LIMIT_SNAPSHOT = {
  limit_requests: 500,
  remaining_requests: 499,
  reset_requests: '120ms',
  limit_tokens: 30000,
  remaining_tokens: 29000,
  reset_tokens: '2s',
} as const;
