package client

import "context"

// TokenSource returns a token: the x/oauth2 shape, with a context. Unless
// documented otherwise, a TokenSource is safe for concurrent use and the
// token it returns is valid when returned.
type TokenSource interface {
	Token(ctx context.Context) (*Token, error)
}

type tokenSourceFunc func(ctx context.Context) (*Token, error)

func (f tokenSourceFunc) Token(ctx context.Context) (*Token, error) { return f(ctx) }

// TokenSourceFunc adapts a function to a TokenSource.
func TokenSourceFunc(f func(ctx context.Context) (*Token, error)) TokenSource {
	return tokenSourceFunc(f)
}
