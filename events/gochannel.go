package events

import (
	"log/slog"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/pubsub/gochannel"
)

// NewGoChannel returns Watermill's in-process Pub/Sub configured for the relay: with
// BlockPublishUntilSubscriberAck, Publish returns only once the subscribers acknowledged
// the message, so the relay deletes a row only after its handler succeeded (a handler
// error makes GoChannel redeliver, and the relay waits) and the events of a key reach
// the handler one after the other, in order. logger may be nil (no logging).
//
// Use the same GoChannel as the relay's publisher and the router's subscriber. Close
// it after the relay stopped; start the relay once the router runs (GoChannel drops,
// and reports delivered, messages of a topic without subscribers).
func NewGoChannel(logger *slog.Logger) *gochannel.GoChannel {
	var wl watermill.LoggerAdapter = watermill.NopLogger{}
	if logger != nil {
		wl = watermill.NewSlogLogger(logger)
	}
	return gochannel.NewGoChannel(gochannel.Config{BlockPublishUntilSubscriberAck: true}, wl)
}
