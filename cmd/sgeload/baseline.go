package main

import (
	"context"
	"net"
	"time"

	"github.com/valyala/fasthttp"
)

// baselineAnswer has the shape and size of a register answer, so the bare server
// costs the client what the real one does and the ratio measures only the server.
var baselineAnswer = []byte(`{"registrationId":"01JZ8Q3W5Y6R7T8V9X0A1B2C3D","wallet":"0x00000000000000000000000000000000000000aa",` +
	`"settlementId":"01JZ8Q3W5Y6R7T8V9X0A1B2C3E","status":"pending","createdAt":"2026-01-01T00:00:00Z"}`)

// baselineServer is a bare fasthttp server on 127.0.0.1:0: the ceiling of this machine
// and this client, measured in the same run as the real server.
type baselineServer struct {
	addr string
	srv  *fasthttp.Server
	done chan struct{}
}

func startBaseline() (*baselineServer, error) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	b := &baselineServer{addr: ln.Addr().String(), done: make(chan struct{}), srv: &fasthttp.Server{
		Handler: func(ctx *fasthttp.RequestCtx) {
			ctx.SetStatusCode(fasthttp.StatusCreated)
			ctx.SetContentType("application/json")
			ctx.SetBody(baselineAnswer)
		},
		NoDefaultServerHeader: true,
	}}
	go func() {
		defer close(b.done)
		_ = b.srv.Serve(ln)
	}()
	return b, nil
}

// close stops the server and waits for it; connections left open get 5s to go idle.
func (b *baselineServer) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = b.srv.ShutdownWithContext(ctx)
	<-b.done
}
