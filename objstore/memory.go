package objstore

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// memGen numbers every version written by any memory store, so an ETag is
// never reused, not even after a delete and re-create.
var memGen atomic.Uint64

type memObject struct {
	data []byte
	etag string
	mod  time.Time
}

type memData struct {
	mu   sync.Mutex
	objs map[string]memObject
}

// memStore keeps objects in process memory. "memory" and "memory-shared"
// both open one process-wide map, so a backup written through one Open is
// visible through the next (RisingWave's "memory" is per instance; rwsnap
// has no use for a store that forgets everything when closed).
type memStore struct {
	d   *memData
	url string
}

var (
	sharedMemOnce sync.Once
	sharedMem     *memData
)

func openSharedMemory(url string) Store {
	sharedMemOnce.Do(func() { sharedMem = &memData{objs: map[string]memObject{}} })
	return &memStore{d: sharedMem, url: url}
}

// NewMemory returns an empty, private in-memory store (for tests).
func NewMemory() Store {
	return &memStore{d: &memData{objs: map[string]memObject{}}, url: "memory"}
}

func (m *memStore) Scheme() string { return "memory" }
func (m *memStore) String() string { return m.url }
func (m *memStore) Close() error   { return nil }

func (m *memStore) info(key string, o memObject) ObjectInfo {
	return ObjectInfo{Key: key, Size: int64(len(o.data)), ETag: o.etag, ModTime: o.mod}
}

func (m *memStore) Get(ctx context.Context, key string) ([]byte, ObjectInfo, error) {
	if err := ctx.Err(); err != nil {
		return nil, ObjectInfo{}, err
	}
	m.d.mu.Lock()
	o, ok := m.d.objs[key]
	m.d.mu.Unlock()
	if !ok {
		return nil, ObjectInfo{}, fmt.Errorf("objstore: %s: get %q: %w", m.url, key, ErrNotFound)
	}
	if int64(len(o.data)) > MaxGetBytes {
		return nil, ObjectInfo{}, tooLarge(m, key, int64(len(o.data)), MaxGetBytes)
	}
	// Stored slices are never mutated, but callers may mutate what they get.
	return bytes.Clone(o.data), m.info(key, o), nil
}

func (m *memStore) Open(ctx context.Context, key string) (io.ReadCloser, ObjectInfo, error) {
	data, info, err := m.Get(ctx, key)
	if err != nil {
		return nil, ObjectInfo{}, err
	}
	return io.NopCloser(bytes.NewReader(data)), info, nil
}

func (m *memStore) Put(ctx context.Context, key string, data []byte) error {
	_, err := m.put(ctx, key, data, false, "")
	return err
}

func (m *memStore) PutIf(ctx context.Context, key string, data []byte, ifMatch string) (string, error) {
	return m.put(ctx, key, data, true, ifMatch)
}

func (m *memStore) put(ctx context.Context, key string, data []byte, cond bool, ifMatch string) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	if err := checkKey(key); err != nil {
		return "", err
	}
	o := memObject{
		data: bytes.Clone(data),
		etag: strconv.FormatUint(memGen.Add(1), 10),
		mod:  time.Now(),
	}
	if o.data == nil {
		o.data = []byte{}
	}
	m.d.mu.Lock()
	defer m.d.mu.Unlock()
	if cond {
		cur, ok := m.d.objs[key]
		if (ifMatch == "" && ok) || (ifMatch != "" && (!ok || cur.etag != ifMatch)) {
			return "", fmt.Errorf("objstore: %s: put %q: %w", m.url, key, ErrPreconditionFailed)
		}
	}
	m.d.objs[key] = o
	return o.etag, nil
}

func (m *memStore) Delete(ctx context.Context, keys ...string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	m.d.mu.Lock()
	defer m.d.mu.Unlock()
	for _, k := range keys {
		delete(m.d.objs, k)
	}
	return nil
}

func (m *memStore) List(ctx context.Context, prefix string) ([]ObjectInfo, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.d.mu.Lock()
	var out []ObjectInfo
	for k, o := range m.d.objs {
		if strings.HasPrefix(k, prefix) {
			out = append(out, m.info(k, o))
		}
	}
	m.d.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}

func (m *memStore) Stat(ctx context.Context, key string) (ObjectInfo, error) {
	if err := ctx.Err(); err != nil {
		return ObjectInfo{}, err
	}
	m.d.mu.Lock()
	o, ok := m.d.objs[key]
	m.d.mu.Unlock()
	if !ok {
		return ObjectInfo{}, fmt.Errorf("objstore: %s: stat %q: %w", m.url, key, ErrNotFound)
	}
	return m.info(key, o), nil
}

// checkKey rejects keys no backend can store the same way.
func checkKey(key string) error {
	switch {
	case key == "":
		return fmt.Errorf("objstore: empty object key")
	case strings.HasPrefix(key, "/"):
		return fmt.Errorf("objstore: object key %q starts with '/'", key)
	}
	return nil
}
