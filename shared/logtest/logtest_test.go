package logtest_test

import (
	"strings"
	"sync"
	"testing"

	"github.com/modelauth/modelauth/shared/logtest"
)

func TestConcurrentWrites(t *testing.T) {
	log, buf := logtest.New()
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for range 100 {
				log.Debug("event", "writer", i)
			}
		})
	}
	wg.Wait()
	if got := strings.Count(buf.String(), `"msg":"event"`); got != 800 {
		t.Fatalf("%d events logged; want 800", got)
	}
}
