package bitrix24

import "context"

// A fence is asked just before a request is written — after the limiter's wait,
// which may be long — and nothing is sent if it refuses. Delivery fences each request
// with its portal's claim, so that a replica that lost the portal to another sends
// nothing more to it, not even the requests that were waiting for the bucket.
type fenceKey struct{}

// WithFence returns a context under which every request first asks fence; if it
// returns an error the request is not sent and the call fails with a
// *TransportError wrapping it, MaybeSent false.
func WithFence(ctx context.Context, fence func(context.Context) error) context.Context {
	return context.WithValue(ctx, fenceKey{}, fence)
}

func checkFence(ctx context.Context) error {
	if f, ok := ctx.Value(fenceKey{}).(func(context.Context) error); ok {
		return f(ctx)
	}
	return nil
}
