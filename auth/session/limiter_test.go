package session

import (
	"fmt"
	"testing"
	"time"
)

func TestLimiterBounded(t *testing.T) {
	l := newLimiter(2, time.Minute)
	now := time.Now()
	for i := 0; i < maxTrackedClients+50; i++ {
		l.Fail(fmt.Sprint("10.0.", i), now)
	}
	if len(l.fails) > maxTrackedClients {
		t.Errorf("limiter tracks %d clients", len(l.fails))
	}
	l.Fail("1.2.3.4", now)
	l.Fail("1.2.3.4", now.Add(time.Second))
	if _, ok := l.Allowed("1.2.3.4", now.Add(2*time.Second)); ok {
		t.Error("allowed after 2 failures with max 2")
	}
	if _, ok := l.Allowed("1.2.3.4", now.Add(61*time.Second)); !ok {
		t.Error("still limited after the window")
	}
}
