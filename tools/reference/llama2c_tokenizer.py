"""The llama2.c tokenizer (tok*.bin), a line-by-line port of run.c.

transformers cannot read the tokenizer embedded in stories260K.gguf, so the
reference token ids for that model come from this port of Karpathy's run.c
(`build_tokenizer`, `encode`, `decode`), which is what the published greedy
sample was produced with.

tok*.bin layout (little endian):
    int32 max_token_length
    vocab_size times:  f32 score, int32 len, len bytes (the piece, no NUL)
Byte-fallback tokens "<0x00>".."<0xFF>" are ids 3..258 (id = byte + 3),
<unk> = 0, <s> (BOS) = 1, </s> (EOS) = 2.
"""

from __future__ import annotations

import struct

BOS = 1
EOS = 2


class Llama2cTokenizer:
    def __init__(self, path: str, vocab_size: int):
        with open(path, "rb") as f:
            data = f.read()
        (self.max_token_length,) = struct.unpack_from("<i", data, 0)
        off = 4
        self.vocab: list[bytes] = []
        self.scores: list[float] = []
        for _ in range(vocab_size):
            score, n = struct.unpack_from("<fi", data, off)
            off += 8
            self.vocab.append(data[off : off + n])
            off += n
            self.scores.append(score)
        if off != len(data):
            raise ValueError(f"{path}: {len(data) - off} trailing bytes (wrong vocab_size?)")
        # run.c looks pieces up by bsearch in a sorted copy; with duplicate
        # pieces bsearch would return an unspecified one.  Refuse that case so
        # the dict below is exact.
        self.lookup: dict[bytes, int] = {}
        for i, piece in enumerate(self.vocab):
            if piece in self.lookup:
                raise ValueError(f"duplicate piece {piece!r} at ids {self.lookup[piece]} and {i}")
            self.lookup[piece] = i

    def encode(self, text: str, bos: bool = True, eos: bool = False) -> list[int]:
        """run.c `encode`: BOS, dummy-prefix " ", code points / byte fallback, merges."""
        raw = text.encode("utf-8")
        tokens: list[int] = []
        if bos:
            tokens.append(BOS)
        # "add_dummy_prefix is true by default": prepend the token of " ",
        # but only when the text is non-empty.
        if len(raw) > 0:
            tokens.append(self.lookup[b" "])
        # Walk the UTF-8 bytes, grouping each code point (at most 4 bytes).
        buf = b""
        for idx, c in enumerate(raw):
            if (c & 0xC0) != 0x80:
                buf = b""  # not a continuation byte: a new code point starts
            buf += bytes([c])
            nxt = raw[idx + 1] if idx + 1 < len(raw) else 0
            if (nxt & 0xC0) == 0x80 and len(buf) < 4:
                continue  # the code point goes on
            tid = self.lookup.get(buf)
            if tid is not None:
                tokens.append(tid)
            else:
                # byte fallback: the first 3 ids are <unk>, <s>, </s>
                tokens.extend(b + 3 for b in buf)
            buf = b""
        # Greedily merge the adjacent pair whose merged piece scores best
        # (leftmost pair on ties, as run.c uses a strict '>').  Like run.c this
        # also looks at pairs involving BOS.
        while True:
            best_score, best_id, best_idx = -1e10, -1, -1
            for i in range(len(tokens) - 1):
                tid = self.lookup.get(self.vocab[tokens[i]] + self.vocab[tokens[i + 1]])
                if tid is not None and self.scores[tid] > best_score:
                    best_score, best_id, best_idx = self.scores[tid], tid, i
            if best_idx == -1:
                break
            tokens[best_idx : best_idx + 2] = [best_id]
        if eos:
            tokens.append(EOS)
        return tokens

    def decode_piece(self, prev: int, token: int) -> bytes:
        """run.c `decode`: strip the space after BOS, map <0xXX> to its byte."""
        piece = self.vocab[token]
        if prev == BOS and piece.startswith(b" "):
            piece = piece[1:]
        if len(piece) == 6 and piece.startswith(b"<0x") and piece.endswith(b">"):
            try:
                return bytes([int(piece[3:5], 16)])
            except ValueError:
                pass
        return piece

    def decode(self, tokens: list[int]) -> str:
        """Concatenate decode_piece over a sequence, as run.c prints it."""
        out = b""
        prev = BOS if tokens and tokens[0] == BOS else -1
        for t in tokens:
            if t == BOS:
                prev = t
                continue
            out += self.decode_piece(prev, t)
            prev = t
        return out.decode("utf-8", errors="replace")
