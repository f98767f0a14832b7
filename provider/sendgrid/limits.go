package sendgrid

// MaxConcurrentCalls: SendGrid documents a number of requests per refresh
// period for each endpoint (X-RateLimit-Limit/-Remaining/-Reset on every
// answer, 429 when spent; 600 requests a minute per user is the default
// it announced), not a number of calls in flight. A cold collection makes
// about 20 calls (fewer once the closed month and subuser credits are
// kept), far below any of those rates; 16 in flight lets its first wave
// (14 calls) go out at once. The engine honours the 429s and the reset
// time.
func (p *Provider) MaxConcurrentCalls() int { return 16 }
