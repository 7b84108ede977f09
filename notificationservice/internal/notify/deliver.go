package notify

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
)

var (
	// errDryRun: no provider for the job's channel.
	errDryRun = errors.New("no provider configured")
	// errDeviceGone: the target device was unregistered after queueing.
	errDeviceGone = errors.New("device no longer registered")
)

// Deliver performs one job: it sends through the channel's provider, then
// records the outcome, and only then does the queue acknowledge the job.
//
// A job whose target is already recorded as sent is skipped: that is the
// redelivery after a crash between recording and acknowledging, and it
// must not send twice. (A failed target is attempted again: that is a dead
// letter an operator retried.) Only a crash between the provider accepting and the
// outcome being recorded (a few milliseconds) can still send twice; see
// the providers for how each limits the damage (Web Push Topic, FCM
// collapse ids and notification tags, SMTP Message-ID).
//
// The error tells the queue what to do: nil acknowledges; a RetryError
// (or any other non-permanent error) redelivers later; a PermanentError
// dead-letters. On the final attempt a temporary failure is recorded as
// failed before it is dead-lettered.
func (s *Service) Deliver(ctx context.Context, job Job, at Attempt) error {
	n, err := s.cfg.Store.Notification(ctx, job.NotificationID)
	if errors.Is(err, ErrNotFound) {
		return Permanent(fmt.Errorf("job %s: notification: %w", job.Key(), err))
	}
	if err != nil {
		return fmt.Errorf("job %s: notification: %w", job.Key(), err)
	}
	if d := n.Deliveries[job.Target]; d.Status == StatusSent {
		s.log.InfoContext(ctx, "notification already sent to this target; skipping redelivery",
			slog.String("notification_id", n.ID), slog.String("target", job.Target))
		return nil
	}
	return s.settle(ctx, job, at, s.send(ctx, job))
}

func (s *Service) send(ctx context.Context, job Job) error {
	switch job.Channel {
	case ChannelPush, ChannelWebPush:
		sender := s.cfg.Providers.FCM
		if job.Channel == ChannelWebPush {
			sender = s.cfg.Providers.WebPush
		}
		if sender == nil {
			return errDryRun
		}
		dev, err := s.cfg.Store.Device(ctx, job.Target)
		if errors.Is(err, ErrNotFound) {
			return errDeviceGone
		}
		if err != nil {
			return fmt.Errorf("device %s: %w", job.Target, err)
		}
		return sender.Send(ctx, PushMessage{
			NotificationID: job.NotificationID, Device: dev, Kind: job.Kind,
			Title: job.Title, Body: job.Body, Data: job.Data, Priority: job.Priority,
		})
	case ChannelEmail:
		if s.cfg.Providers.Email == nil {
			return errDryRun
		}
		if job.Email == nil {
			return Permanent(errors.New("email job without content"))
		}
		return s.cfg.Providers.Email.SendEmail(ctx, EmailMessage{NotificationID: job.NotificationID, EmailContent: *job.Email})
	}
	return Permanent(fmt.Errorf("unknown channel %q", job.Channel))
}

// settle records what the provider said and tells the queue what to do.
func (s *Service) settle(ctx context.Context, job Job, at Attempt, sendErr error) error {
	now := s.clock()
	log := s.log.With(slog.String("notification_id", job.NotificationID), slog.String("channel", string(job.Channel)),
		slog.String("target", job.Target), slog.Int("attempt", at.Number))
	switch {
	case sendErr == nil:
		log.InfoContext(ctx, "notification sent")
		return s.finish(ctx, job, Delivery{Status: StatusSent, At: now})
	case errors.Is(sendErr, errDryRun):
		return s.finish(ctx, job, Delivery{Status: StatusDryRun, Reason: ReasonNoProvider, At: now})
	case errors.Is(sendErr, errDeviceGone):
		return s.finish(ctx, job, Delivery{Status: StatusFailed, Reason: ReasonDeviceGone, At: now})
	case errors.Is(sendErr, ErrUnregistered):
		log.InfoContext(ctx, "push service says the device is gone; deleting it", slog.Any("error", sendErr))
		if err := s.cfg.Store.DeleteDevice(ctx, "", job.Target); err != nil && !errors.Is(err, ErrNotFound) {
			return fmt.Errorf("delete unregistered device %s: %w", job.Target, err)
		}
		return s.finish(ctx, job, Delivery{Status: StatusFailed, Reason: ReasonUnregistered, At: now})
	case IsPermanent(sendErr):
		log.WarnContext(ctx, "notification failed permanently", slog.Any("error", sendErr))
		if err := s.finish(ctx, job, Delivery{Status: StatusFailed, Reason: reason(sendErr), At: now}); err != nil {
			return err
		}
		return sendErr
	case at.Final:
		log.WarnContext(ctx, "notification failed on its last attempt", slog.Any("error", sendErr))
		r := fmt.Sprintf("gave up after %d attempts: %s", at.Number, reason(sendErr))
		if err := s.finish(ctx, job, Delivery{Status: StatusFailed, Reason: r, At: now}); err != nil {
			return err
		}
		return Permanent(sendErr)
	default:
		log.InfoContext(ctx, "notification failed, will retry", slog.Any("error", sendErr))
		if err := s.cfg.Store.RecordRetry(ctx, job.NotificationID, "retrying: "+reason(sendErr), now); err != nil {
			log.WarnContext(ctx, "record retry", slog.Any("error", err))
		}
		return sendErr
	}
}

// GiveUp records a job the queue dead-lettered without a result from
// Deliver (the process died during its last delivery).
func (s *Service) GiveUp(ctx context.Context, job Job, why string) error {
	return s.finish(ctx, job, Delivery{Status: StatusFailed, Reason: why, At: s.clock()})
}

// finish records a target's outcome once and updates the overall status.
func (s *Service) finish(ctx context.Context, job Job, d Delivery) error {
	n, recorded, err := s.cfg.Store.RecordDelivery(ctx, job.NotificationID, job.Target, d)
	if err != nil {
		return fmt.Errorf("record delivery of %s: %w", job.Key(), err)
	}
	if !recorded {
		return nil
	}
	if st, why, ok := n.aggregate(); ok {
		if err := s.cfg.Store.SetStatus(ctx, n.ID, st, why, d.At); err != nil {
			return fmt.Errorf("status of %s: %w", n.ID, err)
		}
	}
	return nil
}

// reason is an error's text for the history, bounded.
func reason(err error) string {
	var p *PermanentError
	if errors.As(err, &p) {
		err = p.Err
	}
	var r *RetryError
	if errors.As(err, &r) {
		err = r.Err
	}
	return truncateRunes(err.Error(), 300)
}
