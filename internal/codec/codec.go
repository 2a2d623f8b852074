// Package codec decompresses the records section of Kafka v2 record batches
// for every codec Kafka producers use: gzip, snappy (Kafka's xerial framing
// and raw blocks), lz4 (the frame format) and zstd.
//
// Importing the package installs Decompress as stream.Decompress, so every
// front door that reads records (HTTP, CLI, Kafka produce validation) decodes
// the same batches the same way. Fetching over Kafka does not need it: Kafka
// clients decompress themselves.
package codec

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/snappy"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"

	"github.com/twoway/twoway/internal/records"
	"github.com/twoway/twoway/internal/stream"
)

func init() { stream.Decompress = Decompress }

// MaxDecompressed bounds the decompressed size of one batch, so that a small
// hostile batch cannot make the agent allocate without limit.
const MaxDecompressed = 256 << 20

// ErrTooLarge: the batch decompresses to more than MaxDecompressed bytes.
var ErrTooLarge = fmt.Errorf("decompressed batch exceeds %d bytes", MaxDecompressed)

// Decompress turns a compressed records section into plain records bytes. It
// is a records.Decompressor.
func Decompress(codec int, src []byte) ([]byte, error) {
	switch codec {
	case records.CodecNone:
		return src, nil
	case records.CodecGzip:
		zr, err := gzip.NewReader(bytes.NewReader(src))
		if err != nil {
			return nil, fmt.Errorf("gzip: %w", err)
		}
		defer zr.Close()
		return readLimited(zr, "gzip")
	case records.CodecSnappy:
		return unsnappy(src)
	case records.CodecLZ4:
		return readLimited(lz4.NewReader(bytes.NewReader(src)), "lz4")
	case records.CodecZstd:
		d, err := zstdDecoder()
		if err != nil {
			return nil, err
		}
		out, err := d.DecodeAll(src, nil)
		if errors.Is(err, zstd.ErrDecoderSizeExceeded) || errors.Is(err, zstd.ErrWindowSizeExceeded) {
			return nil, fmt.Errorf("zstd: %w", ErrTooLarge)
		}
		if err != nil {
			return nil, fmt.Errorf("zstd: %w", err)
		}
		return out, nil
	}
	return nil, fmt.Errorf("unknown compression codec %d (Kafka defines 0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd)", codec)
}

func readLimited(r io.Reader, name string) ([]byte, error) {
	out, err := io.ReadAll(io.LimitReader(r, MaxDecompressed+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if len(out) > MaxDecompressed {
		return nil, fmt.Errorf("%s: %w", name, ErrTooLarge)
	}
	return out, nil
}

// xerialMagic starts snappy data in the framing the Java client (and so
// Kafka) has always written: magic, version and compatible version, then
// blocks of big-endian u32 length + raw snappy block.
var xerialMagic = []byte{0x82, 'S', 'N', 'A', 'P', 'P', 'Y', 0}

const xerialHeaderLen = 16

func unsnappy(src []byte) ([]byte, error) {
	if !bytes.HasPrefix(src, xerialMagic) {
		return snappyBlock(nil, src)
	}
	if len(src) < xerialHeaderLen {
		return nil, errors.New("snappy: truncated xerial header")
	}
	src = src[xerialHeaderLen:]
	var out []byte
	for len(src) > 0 {
		if len(src) < 4 {
			return nil, errors.New("snappy: truncated xerial block length")
		}
		n := binary.BigEndian.Uint32(src)
		src = src[4:]
		if uint64(n) > uint64(len(src)) {
			return nil, fmt.Errorf("snappy: xerial block of %d bytes with %d left", n, len(src))
		}
		var err error
		if out, err = snappyBlock(out, src[:n]); err != nil {
			return nil, err
		}
		src = src[n:]
	}
	return out, nil
}

// snappyBlock appends the decoding of one raw snappy block to dst.
func snappyBlock(dst, block []byte) ([]byte, error) {
	n, err := snappy.DecodedLen(block)
	if err != nil {
		return nil, fmt.Errorf("snappy: %w", err)
	}
	if n > MaxDecompressed-len(dst) {
		return nil, fmt.Errorf("snappy: %w", ErrTooLarge)
	}
	out, err := snappy.Decode(nil, block)
	if err != nil {
		return nil, fmt.Errorf("snappy: %w", err)
	}
	if dst == nil {
		return out, nil
	}
	return append(dst, out...), nil
}

var (
	zstdOnce sync.Once
	zstdDec  *zstd.Decoder
	zstdErr  error
)

// zstdDecoder is shared: DecodeAll is safe for concurrent use.
func zstdDecoder() (*zstd.Decoder, error) {
	zstdOnce.Do(func() {
		zstdDec, zstdErr = zstd.NewReader(nil,
			zstd.WithDecoderConcurrency(0),
			zstd.WithDecoderMaxMemory(MaxDecompressed),
			zstd.WithDecoderMaxWindow(MaxDecompressed),
		)
	})
	return zstdDec, zstdErr
}
