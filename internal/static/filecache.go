package static

import (
	"io/fs"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/whiskserver/whisk/internal/filerange"
)

// DefaultFileCacheSize is the Options.FileCacheSize used when it is 0.
const DefaultFileCacheSize = 1000

// DefaultFileCacheValid is the Options.FileCacheValid used when it is 0.
const DefaultFileCacheValid = time.Second

// fileCacheInactive is how long an entry stays without being requested
// before the sweep closes it, so that the descriptor of a deleted file
// does not hold its disk space.
const fileCacheInactive = 60 * time.Second

// cachedFile is an open regular file with everything its responses need,
// shared by all the requests for it; or, with f nil, the knowledge that a
// precompressed sibling does not exist. Responses send it with
// filerange.Range at their own offsets.
type cachedFile struct {
	f       *os.File
	fd      int
	size    int64
	modTime time.Time
	mode    fs.FileMode // a chmod that makes the file unreadable is seen
	dev     uint64
	ino     uint64

	// Header values, built once, each a slice with len == cap so that a
	// Header.Add by someone else copies instead of writing into it.
	etag          []string
	lastModified  []string
	contentLength []string
	fileMeta      // from the name requested, shared with its siblings

	checked  atomic.Int64 // fileCache.now() of the last check against the file system
	checking atomic.Bool  // one request re-checks an expired entry; the others go on
	refs     atomic.Int32 // the cache's reference plus one per request using f
}

// release drops one reference and closes the file with the last.
func (e *cachedFile) release() {
	if e.refs.Add(-1) == 0 && e.f != nil {
		e.f.Close()
	}
}

// same reports whether fi describes the file e holds (or, for a missing
// entry, whether it is still missing: fi nil).
func (e *cachedFile) same(fi fs.FileInfo) bool {
	if e.f == nil || fi == nil {
		return e.f == nil && fi == nil
	}
	dev, ino := fileID(fi)
	return dev == e.dev && ino == e.ino && fi.Size() == e.size && fi.ModTime().Equal(e.modTime) && fi.Mode() == e.mode
}

// fileID returns the device and inode numbers of fi.
func fileID(fi fs.FileInfo) (dev, ino uint64) {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return uint64(st.Dev), st.Ino
	}
	return 0, 0
}

// fileMeta is what a response takes from the name requested rather than
// from the file: the same for a file and its precompressed siblings.
type fileMeta struct {
	contentType     []string
	cacheControl    []string // nil: none
	contentEncoding []string // nil: the file itself, not a sibling
	siblings        bool     // the type is worth looking for precompressed siblings
}

// newCachedFile builds the entry for f, a regular file described by fi,
// served with meta. It takes f over.
func newCachedFile(f *os.File, fi fs.FileInfo, meta fileMeta) (*cachedFile, error) {
	fd, err := filerange.FD(f)
	if err != nil {
		f.Close()
		return nil, err
	}
	e := &cachedFile{
		f:             f,
		fd:            fd,
		size:          fi.Size(),
		modTime:       fi.ModTime(),
		mode:          fi.Mode(),
		etag:          []string{etag(fi, meta.encoding())},
		lastModified:  []string{fi.ModTime().UTC().Format(http.TimeFormat)},
		contentLength: []string{strconv.FormatInt(fi.Size(), 10)},
		fileMeta:      meta,
	}
	e.dev, e.ino = fileID(fi)
	return e, nil
}

// encoding returns the Content-Encoding of a sibling, "" for the file.
func (m fileMeta) encoding() string {
	if m.contentEncoding == nil {
		return ""
	}
	return m.contentEncoding[0]
}

// content returns a reader of the whole file at its own offset.
func (e *cachedFile) content() *filerange.Range { return filerange.New(e.f, e.fd, e.size) }

// fileCache keeps regular files open between requests, as nginx's
// open_file_cache does: a hit costs no open, fstat or close. Each entry is
// checked against the file system (one stat by name) when it is used more
// than valid after its last check, so a changed, replaced or deleted file
// is seen within valid. A nil *fileCache caches nothing.
type fileCache struct {
	mu        sync.RWMutex
	entries   map[string]*cachedFile // nil once closed
	max       int
	valid     int64 // nanoseconds
	epoch     time.Time
	stop      chan struct{}
	done      chan struct{}
	closeOnce sync.Once
}

// newFileCache returns a cache of at most max entries, checked after
// valid, with a sweep of inactive entries every sweep; max <= 0 turns it
// off (nil).
func newFileCache(max int, valid, sweep time.Duration) *fileCache {
	if max <= 0 {
		return nil
	}
	c := &fileCache{
		entries: make(map[string]*cachedFile),
		max:     max,
		valid:   int64(valid),
		epoch:   time.Now(),
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
	}
	go c.sweepLoop(sweep)
	return c
}

// now is the cache's clock: monotonic nanoseconds since it was built.
func (c *fileCache) now() int64 { return int64(time.Since(c.epoch)) }

// get returns the entry for key with a reference the caller must release,
// or nil. An entry due for a check is checked with stat, which fails or
// finds another file to drop it; only one caller checks at a time.
func (c *fileCache) get(key string, stat func() (fs.FileInfo, error)) *cachedFile {
	if c == nil {
		return nil
	}
	c.mu.RLock()
	e := c.entries[key]
	if e != nil {
		e.refs.Add(1)
	}
	c.mu.RUnlock()
	if e == nil {
		return nil
	}
	now := c.now()
	if now-e.checked.Load() < c.valid || !e.checking.CompareAndSwap(false, true) {
		return e
	}
	defer e.checking.Store(false)
	fi, err := stat()
	if err != nil || !fi.Mode().IsRegular() {
		fi = nil
	}
	if e.same(fi) {
		e.checked.Store(now)
		return e
	}
	c.remove(key, e)
	e.release()
	return nil
}

// put adds e under key, replacing what is there, and returns it with a
// reference for the caller (the cache holds its own). When the cache is
// full an arbitrary entry makes room.
func (c *fileCache) put(key string, e *cachedFile) *cachedFile {
	if c == nil {
		e.refs.Store(1)
		return e
	}
	e.refs.Store(2)
	e.checked.Store(c.now())
	c.mu.Lock()
	if c.entries == nil {
		// Closed: the caller's reference is the only one.
		c.mu.Unlock()
		e.refs.Store(1)
		return e
	}
	if old := c.entries[key]; old != nil {
		old.release()
	} else if len(c.entries) >= c.max {
		for k, victim := range c.entries {
			delete(c.entries, k)
			victim.release()
			break
		}
	}
	c.entries[key] = e
	c.mu.Unlock()
	return e
}

// remove drops key if it still holds e.
func (c *fileCache) remove(key string, e *cachedFile) {
	c.mu.Lock()
	if c.entries[key] == e {
		delete(c.entries, key)
		e.release()
	}
	c.mu.Unlock()
}

// sweepLoop closes, every period, the entries not checked (so not used)
// for fileCacheInactive, or for two validity periods when that is longer
// (an entry in use is checked once per period).
func (c *fileCache) sweepLoop(period time.Duration) {
	defer close(c.done)
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
			c.sweep(c.now() - max(int64(fileCacheInactive), 2*c.valid))
		}
	}
}

// sweep drops the entries last checked before cutoff.
func (c *fileCache) sweep(cutoff int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, e := range c.entries {
		if e.checked.Load() < cutoff {
			delete(c.entries, k)
			e.release()
		}
	}
}

// close stops the sweep and releases every entry; files still being sent
// close when their last request ends, and files opened by requests after
// it are not kept. Closing twice does nothing.
func (c *fileCache) close() {
	if c == nil {
		return
	}
	c.closeOnce.Do(func() {
		close(c.stop)
		<-c.done
		c.mu.Lock()
		for _, e := range c.entries {
			e.release()
		}
		c.entries = nil
		c.mu.Unlock()
	})
}
