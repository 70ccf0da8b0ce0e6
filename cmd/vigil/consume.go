package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	kafkasink "github.com/vigil-video/vigil/sinks/kafka"
)

// runConsume prints a topic's messages, one JSON line each, and with
// --validate checks each against the topic's JSON Schema.
func runConsume(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("vigil consume", flag.ContinueOnError)
	fs.SetOutput(stderr)
	brokers := fs.String("brokers", "", "bootstrap `brokers`, host:port, comma-separated (required)")
	topic := fs.String("topic", "", "`topic` to read, e.g. vigil.detections (required)")
	group := fs.String("group", "", "consumer `group` that commits its offsets (default: none; every partition is read)")
	validate := fs.Bool("validate", false, "check each message against the topic's JSON Schema; exit non-zero at the first invalid one")
	kind := fs.String("schema", "", "`kind` of schema for --validate: detections or tracks (default: tracks if the topic name ends in tracks)")
	count := fs.Int("count", 0, "stop after `N` messages (default: run until interrupted)")
	fromBeginning := fs.Bool("from-beginning", false, "start at the oldest message, not the newest (with --group: when the group has no offset yet)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := requireFlags(fs, "brokers", *brokers, "topic", *topic); err != nil {
		return err
	}
	if *kind == "" {
		*kind = kafkasink.KindOf(*topic)
	}
	if _, err := kafkasink.Schema(*kind); err != nil {
		fmt.Fprintf(stderr, "--schema: %v\n", err)
		return errUsage
	}
	c := &consumer{
		brokers: strings.Split(*brokers, ","), topic: *topic, group: *group, kind: *kind,
		validate: *validate, count: *count, fromBeginning: *fromBeginning, out: stdout,
	}
	return c.run(ctx)
}

type consumer struct {
	brokers       []string
	topic, group  string
	kind          string
	validate      bool
	count         int
	fromBeginning bool
	out           io.Writer
}

// fetched is one message, or the error that ended a partition's reader.
type fetched struct {
	msg    kafkago.Message
	err    error
	commit func(context.Context) error
}

func (c *consumer) run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	readers, err := c.readers(ctx)
	if err != nil {
		return err
	}
	ch := make(chan fetched)
	var wg sync.WaitGroup
	for _, r := range readers {
		wg.Go(func() {
			defer r.Close()
			for {
				m, err := r.FetchMessage(ctx)
				f := fetched{msg: m, err: err}
				if err == nil && c.group != "" {
					f.commit = func(ctx context.Context) error { return r.CommitMessages(ctx, m) }
				}
				select {
				case ch <- f:
				case <-ctx.Done():
					return
				}
				if err != nil {
					return
				}
			}
		})
	}
	defer wg.Wait()
	defer cancel()

	var line []byte
	for n := 0; c.count == 0 || n < c.count; n++ {
		var f fetched
		select {
		case f = <-ch:
		case <-ctx.Done():
			return nil // interrupted
		}
		if f.err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("reading %s: %w", c.topic, f.err)
		}
		if line, err = c.format(line[:0], f.msg.Value); err != nil {
			return fmt.Errorf("message at %s partition %d offset %d (key %q): %w", c.topic, f.msg.Partition, f.msg.Offset, f.msg.Key, err)
		}
		if _, err := c.out.Write(line); err != nil {
			return fmt.Errorf("writing output: %w", err)
		}
		if f.commit != nil {
			if err := f.commit(ctx); err != nil && ctx.Err() == nil {
				return fmt.Errorf("committing offset of %s partition %d: %w", c.topic, f.msg.Partition, err)
			}
		}
	}
	return nil
}

// format appends value as one JSON line to buf, validated if asked. A value
// that is not JSON is printed as a JSON string.
func (c *consumer) format(buf, value []byte) ([]byte, error) {
	if c.validate {
		if err := kafkasink.Validate(c.kind, value); err != nil {
			return buf, err
		}
	}
	var b bytes.Buffer
	if json.Compact(&b, value) != nil {
		s, _ := json.Marshal(string(value))
		buf = append(buf, s...)
	} else {
		buf = append(buf, b.Bytes()...)
	}
	return append(buf, '\n'), nil
}

// readers returns a group reader, or one reader per partition without a
// group.
func (c *consumer) readers(ctx context.Context) ([]*kafkago.Reader, error) {
	start := kafkago.LastOffset
	if c.fromBeginning {
		start = kafkago.FirstOffset
	}
	if c.group != "" {
		return []*kafkago.Reader{kafkago.NewReader(kafkago.ReaderConfig{
			Brokers: c.brokers, Topic: c.topic, GroupID: c.group, StartOffset: start,
			MaxWait: 250 * time.Millisecond, MaxBytes: 10 << 20,
		})}, nil
	}
	mctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	client := &kafkago.Client{Addr: kafkago.TCP(c.brokers...)}
	md, err := client.Metadata(mctx, &kafkago.MetadataRequest{Topics: []string{c.topic}})
	if err != nil {
		return nil, fmt.Errorf("reading metadata of %s: %w", c.topic, err)
	}
	var parts []int
	for _, t := range md.Topics {
		if t.Name != c.topic {
			continue
		}
		if t.Error != nil {
			return nil, fmt.Errorf("reading metadata of %s: %w", c.topic, t.Error)
		}
		for _, p := range t.Partitions {
			parts = append(parts, p.ID)
		}
	}
	if len(parts) == 0 {
		return nil, errors.New("topic " + c.topic + " has no partitions")
	}
	out := make([]*kafkago.Reader, len(parts))
	for i, p := range parts {
		out[i] = kafkago.NewReader(kafkago.ReaderConfig{
			Brokers: c.brokers, Topic: c.topic, Partition: p,
			MaxWait: 250 * time.Millisecond, MaxBytes: 10 << 20,
		})
		if err := out[i].SetOffset(start); err != nil {
			for _, r := range out[:i+1] {
				r.Close()
			}
			return nil, fmt.Errorf("seeking %s partition %d: %w", c.topic, p, err)
		}
	}
	return out, nil
}
