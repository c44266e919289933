package main

import (
	"context"
	"errors"
	"net"
	"sync"
)

// earlyResponseConn is a connection to the custom handler that keeps a
// response the handler sent before it read the whole request body.
//
// A handler may answer early, for example 413 over its body cap, and
// close the connection while the host is still sending the body; the
// host's next write then fails (broken pipe, connection reset). The
// http.Transport writes the body and reads the response in two
// goroutines and returns whichever result comes first: with a write
// error it closes the connection and drops the response, even one that
// it had already read. So a failed Write here does not return until the
// transport closes the connection, which it does once its read side is
// done with it: after it relayed the response (its body read), or
// failed to read one (then the write error is the request's error, as
// before), or the request was cancelled. The transport therefore sees
// the response first whenever there is one, and the rest of the request
// body is not sent.
//
// It is safe for concurrent use, as net.Conn is.
type earlyResponseConn struct {
	net.Conn
	closed    chan struct{}
	closeOnce sync.Once
}

var _ net.Conn = (*earlyResponseConn)(nil)

func newEarlyResponseConn(c net.Conn) *earlyResponseConn {
	return &earlyResponseConn{Conn: c, closed: make(chan struct{})}
}

// Write writes p; if that fails while the connection is open, it waits
// until the connection is closed before it returns the error.
func (c *earlyResponseConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	if err != nil && !errors.Is(err, net.ErrClosed) {
		<-c.closed
	}
	return n, err
}

// Close closes the connection and releases a waiting Write.
func (c *earlyResponseConn) Close() error {
	c.closeOnce.Do(func() { close(c.closed) })
	return c.Conn.Close()
}

// dialHandler dials the custom handler for the host's transport; its
// connections are earlyResponseConns.
func dialHandler(ctx context.Context, network, addr string) (net.Conn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	return newEarlyResponseConn(c), nil
}
