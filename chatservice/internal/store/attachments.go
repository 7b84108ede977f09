package store

import (
	"context"
	"errors"
	"fmt"
	"io"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/parleyhq/parley/chatservice/internal/chat"
)

// chunkSize is the GridFS default (255 KiB).
const chunkSize = 255 << 10

// SaveAttachment writes body to the GridFS bucket in the standard layout
// (attachments.chunks {files_id, n, data}, then the attachments.files
// document), one chunk at a time. The driver's upload stream is not used:
// it buffers 16 MiB per upload and its bucket is not safe for concurrent
// uploads. If reading body fails, the chunks written so far are deleted and
// the read error returned.
func (s *Store) SaveAttachment(ctx context.Context, a chat.Attachment, body io.Reader) (chat.Attachment, error) {
	buf := make([]byte, chunkSize)
	var (
		n    int32
		size int64
	)
	for {
		k, rerr := io.ReadFull(body, buf)
		if k > 0 {
			doc := bson.D{
				{Key: "_id", Value: bson.NewObjectID()},
				{Key: "files_id", Value: a.ID},
				{Key: "n", Value: n},
				{Key: "data", Value: bson.Binary{Data: buf[:k]}},
			}
			if err := s.gatedInsertOne(ctx, s.chunks, doc); err != nil {
				s.abortUpload(ctx, a.ID)
				return chat.Attachment{}, fmt.Errorf("write chunk %d of %s: %w", n, a.ID, err)
			}
			n++
			size += int64(k)
		}
		if errors.Is(rerr, io.EOF) || errors.Is(rerr, io.ErrUnexpectedEOF) {
			break
		}
		if rerr != nil {
			s.abortUpload(ctx, a.ID)
			return chat.Attachment{}, rerr
		}
	}
	a.Size = size
	file := fileDoc{
		ID: a.ID, Length: size, ChunkSize: chunkSize, UploadDate: a.CreatedAt, Filename: a.Filename,
		Metadata: fileMetadata{ChannelID: a.ChannelID, UploaderID: a.UploaderID, ContentType: a.ContentType, CreatedAt: a.CreatedAt},
	}
	if err := s.gatedInsertOne(ctx, s.files, file); err != nil {
		s.abortUpload(ctx, a.ID)
		return chat.Attachment{}, fmt.Errorf("write file document of %s: %w", a.ID, err)
	}
	return a, nil
}

// abortUpload deletes the chunks of a failed upload, even when ctx is done
// (a cancelled upload is the common case).
func (s *Store) abortUpload(ctx context.Context, id string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	// Best effort: a leftover chunk without a files document is invisible
	// to readers and is what GridFS itself leaves after a crash.
	unlock, err := s.lockWrites(ctx)
	if err != nil {
		return
	}
	defer unlock()
	_, _ = s.chunks.DeleteMany(ctx, bson.D{{Key: "files_id", Value: id}})
}

// GetAttachment returns an attachment's metadata.
func (s *Store) GetAttachment(ctx context.Context, id string) (chat.Attachment, error) {
	var d fileDoc
	if err := s.files.FindOne(ctx, bson.D{{Key: "_id", Value: id}}).Decode(&d); err != nil {
		return chat.Attachment{}, fmt.Errorf("find attachment %s: %w", id, notFound(err))
	}
	return fromDocFile(d), nil
}

// OpenAttachment opens an attachment's content with the driver's GridFS
// download stream (a bucket per call: buckets keep per-call state).
func (s *Store) OpenAttachment(ctx context.Context, id string) (io.ReadCloser, error) {
	bucket := s.db.GridFSBucket(options.GridFSBucket().SetName(AttachmentsBucket))
	ds, err := bucket.OpenDownloadStream(ctx, id)
	if err != nil {
		if errors.Is(err, mongo.ErrFileNotFound) {
			return nil, fmt.Errorf("open attachment %s: %w", id, chat.ErrNotFound)
		}
		return nil, fmt.Errorf("open attachment %s: %w", id, err)
	}
	return ds, nil
}

// DeleteAttachment removes an attachment's file document and chunks.
func (s *Store) DeleteAttachment(ctx context.Context, id string) error {
	unlock, err := s.lockWrites(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	res, err := s.files.DeleteOne(ctx, bson.D{{Key: "_id", Value: id}})
	if err != nil {
		return fmt.Errorf("delete attachment %s: %w", id, err)
	}
	if _, err := s.chunks.DeleteMany(ctx, bson.D{{Key: "files_id", Value: id}}); err != nil {
		return fmt.Errorf("delete chunks of %s: %w", id, err)
	}
	if res.DeletedCount == 0 {
		return fmt.Errorf("attachment %s: %w", id, chat.ErrNotFound)
	}
	return nil
}
