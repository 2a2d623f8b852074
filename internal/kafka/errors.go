package kafka

import (
	"context"
	"errors"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/twoway/twoway/internal/commitlog"
	"github.com/twoway/twoway/internal/records"
	"github.com/twoway/twoway/internal/stream"
)

// errorCode maps an error from the streams service to a Kafka error code.
// Errors that mean "not written, try again" map to retriable codes, so that
// clients retry as they would against a broker; input errors map to
// non-retriable ones.
func errorCode(err error) int16 {
	var oor *stream.OffsetOutOfRangeError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &oor):
		return kerr.OffsetOutOfRange.Code
	case errors.Is(err, stream.ErrUnknownTopic), errors.Is(err, stream.ErrUnknownPartition):
		return kerr.UnknownTopicOrPartition.Code
	case errors.Is(err, stream.ErrTopicExists):
		return kerr.TopicAlreadyExists.Code
	case errors.Is(err, stream.ErrInvalidTopic):
		return kerr.InvalidTopicException.Code
	case errors.Is(err, stream.ErrInvalidConfig):
		return kerr.InvalidConfig.Code
	case errors.Is(err, stream.ErrTooLarge):
		return kerr.MessageTooLarge.Code
	case errors.Is(err, stream.ErrOutOfOrderSequence):
		return kerr.OutOfOrderSequenceNumber.Code
	case errors.Is(err, stream.ErrInvalidProducerEpoch):
		return kerr.InvalidProducerEpoch.Code
	case errors.Is(err, stream.ErrUnknownProducerID):
		return kerr.UnknownProducerID.Code
	case errors.Is(err, stream.ErrNoKey):
		return kerr.InvalidRecord.Code
	case errors.Is(err, stream.ErrInvalidTxnState):
		return kerr.InvalidTxnState.Code
	case errors.Is(err, stream.ErrProducerFenced):
		return kerr.InvalidProducerEpoch.Code
	case errors.Is(err, records.ErrInvalid), errors.Is(err, stream.ErrInvalidRecords):
		return kerr.CorruptMessage.Code
	case errors.Is(err, commitlog.ErrClosed):
		// This agent is going away: make the client refresh metadata and
		// move to another one.
		return kerr.NotLeaderForPartition.Code
	case stream.IsRetryable(err), errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		// Not committed, or the outcome is unknown: a retry is safe for an
		// idempotent producer (it is deduplicated) and is what Kafka
		// clients do for a timeout anyway.
		return kerr.RequestTimedOut.Code
	}
	// Bucket failures and the like: retriable, as a broker's disk error is.
	return kerr.KafkaStorageError.Code
}

func errMessage(err error) *string {
	if err == nil {
		return nil
	}
	m := err.Error()
	return &m
}
