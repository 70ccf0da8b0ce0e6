package deps
import (
 _ "go.yaml.in/yaml/v3"
 _ "github.com/stretchr/testify/require"
 _ "go.uber.org/goleak"
 _ "github.com/prometheus/client_golang/prometheus"
 _ "github.com/prometheus/client_golang/prometheus/testutil"
 _ "golang.org/x/sync/errgroup"
)
