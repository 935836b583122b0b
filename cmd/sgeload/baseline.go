package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"

	"github.com/sgeplatform/sge/persistence"
	"github.com/valyala/fasthttp"
)

// baselineAnswer has the shape and size of a register answer, so the bare server
// costs the client what the real one does and the ratio measures only the server.
var baselineAnswer = []byte(`{"registrationId":"01JZ8Q3W5Y6R7T8V9X0A1B2C3D","wallet":"0x00000000000000000000000000000000000000aa",` +
	`"settlementId":"01JZ8Q3W5Y6R7T8V9X0A1B2C3E","status":"pending","createdAt":"2026-01-01T00:00:00Z"}`)

// baselineEnv set to 1 makes an sgeload process the bare baseline server
// instead of a load generator (see startBaseline).
const baselineEnv = "SGELOAD_BASELINE_SERVER"

// baselineServer is a bare fasthttp server on 127.0.0.1:0: the ceiling of this
// machine and this client, measured in the same run as the real server.
//
// It runs in a child process, as sged does. Inside the load generator's own
// process, client and server would share one Go scheduler and hand requests
// over without the cross-process wake-ups a real server pays for; on 2 cores
// that ceiling was about twice what any separate server process reached.
type baselineServer struct {
	addr  string
	cmd   *exec.Cmd
	stdin io.Closer // closing it tells the child to stop
}

// startBaseline starts this executable again as the baseline server and
// waits for the address it listens on.
// A non-empty storeDir makes it the durable baseline, with its store there
// and its WAL in walDir (empty: beside the store).
func startBaseline(storeDir, walDir string) (*baselineServer, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), baselineEnv+"=1", durableStoreEnv+"="+storeDir, durableWALEnv+"="+walDir)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	b := &baselineServer{cmd: cmd, stdin: stdin}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if b.addr = strings.TrimSpace(line); err != nil || b.addr == "" {
		b.close()
		return nil, fmt.Errorf("sgeload: the baseline server did not start (%v)", err)
	}
	return b, nil
}

// close stops the child and waits for it.
func (b *baselineServer) close() {
	_ = b.stdin.Close()
	_ = b.cmd.Wait()
}

// serveBaselineIfChild serves the baseline and exits when this process was
// started as the baseline server (startBaseline); otherwise it returns.
func serveBaselineIfChild() {
	if os.Getenv(baselineEnv) != "1" {
		return
	}
	if err := serveBaseline(); err != nil {
		fmt.Fprintln(os.Stderr, "sgeload baseline:", err)
		os.Exit(2)
	}
	os.Exit(0)
}

// serveBaseline is the child's side: it prints its address, then serves until
// its standard input closes (the parent closed it, or died).
func serveBaseline() error {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		return err
	}
	handler := answerBaseline
	if dir := os.Getenv(durableStoreEnv); dir != "" {
		s, err := persistence.Open(persistence.Config{Dir: dir, WALDir: os.Getenv(durableWALEnv)})
		if err != nil {
			return err
		}
		defer s.Close()
		handler = durableHandler(s)
	}
	srv := &fasthttp.Server{Handler: handler, NoDefaultServerHeader: true}
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		_ = ln.Close()
	}()
	if _, err := fmt.Println(ln.Addr()); err != nil {
		return err
	}
	if err := srv.Serve(ln); !errors.Is(err, net.ErrClosed) {
		return err
	}
	return nil
}

// answerBaseline is the bare baseline's whole work.
func answerBaseline(ctx *fasthttp.RequestCtx) {
	ctx.SetStatusCode(fasthttp.StatusCreated)
	ctx.SetContentType("application/json")
	ctx.SetBody(baselineAnswer)
}
