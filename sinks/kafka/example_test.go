package kafka_test

import (
	"context"
	"encoding/json"
	"log"

	kafkago "github.com/segmentio/kafka-go"
)

// A consumer of vigil.detections that drops the repeats at-least-once
// delivery may bring (the README shows this example).
func Example_consumer() {
	r := kafkago.NewReader(kafkago.ReaderConfig{
		Brokers: []string{"127.0.0.1:9092"}, Topic: "vigil.detections", GroupID: "my-app",
	})
	defer r.Close()
	seen := map[string]bool{} // message-id of what was handled; keep it bounded in production
	for {
		m, err := r.FetchMessage(context.Background())
		if err != nil {
			log.Fatal(err)
		}
		id := ""
		for _, h := range m.Headers {
			if h.Key == "message-id" { // "<stream>/<seq>"
				id = string(h.Value)
			}
		}
		if !seen[id] {
			seen[id] = true
			var res struct {
				Stream     string `json:"stream"`
				Seq        uint64 `json:"seq"`
				Detections []struct {
					Box     [4]float32 `json:"box"`
					Label   string     `json:"label"`
					Score   float32    `json:"score"`
					TrackID uint64     `json:"track_id"`
				} `json:"detections"`
			}
			if err := json.Unmarshal(m.Value, &res); err != nil {
				log.Printf("skipping bad message %s: %v", id, err)
			} else {
				log.Printf("%s frame %d: %d detections", res.Stream, res.Seq, len(res.Detections))
			}
		}
		if err := r.CommitMessages(context.Background(), m); err != nil {
			log.Fatal(err)
		}
	}
}
