package main

import (
	"os"
	"testing"

	"github.com/liverecall/liverecall/events/kafkatest"
)

func TestMain(m *testing.M) {
	// The soak's broker process is this test binary run again.
	kafkatest.ServeChildIfAsked()
	os.Exit(m.Run())
}
