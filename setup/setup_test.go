package setup_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"

	"supportbot/bitrix24"
	"supportbot/bitrix24/b24test"
	"supportbot/setup"
)

// TestPatientWaitsOutTheRateLimit: a set-up command's calls to a portal whose bucket
// is full are repeated until they pass, rather than failing the command.
func TestPatientWaitsOutTheRateLimit(t *testing.T) {
	t.Parallel()
	p := b24test.New(t)
	p.SetRateLimit(2, 2)
	c := setup.Patient(bitrix24.NewClient(p.WebhookURL())) // no client-side limiter
	for i := range 5 {
		if err := setup.CheckScope(context.Background(), c); err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
	}
	if p.LimitRejections() == 0 {
		t.Fatal("the portal never refused: the test did not exercise the retry")
	}
}

// TestPatientReportsUnreachableAtOnce: a portal that cannot be reached is reported on
// the first try, and explained.
func TestPatientReportsUnreachableAtOnce(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + ln.Addr().String() + "/rest/1/secret/"
	ln.Close()
	err = setup.CheckScope(context.Background(), setup.Patient(bitrix24.NewClient(url)))
	var te *bitrix24.TransportError
	if !errors.As(err, &te) {
		t.Fatalf("got %v, want a transport error", err)
	}
	if msg := setup.Explain(err); msg == "" || !strings.Contains(msg, "cannot reach the portal") || strings.Contains(msg, "secret") {
		t.Fatalf("explained as %q", msg)
	}
}
