#!/usr/bin/env python3
"""Times the official RWKV World tokenizer's algorithm in Python, for comparison with Skein.

This re-implements the algorithm of ChatRWKV's TRIE_TOKENIZER (rwkv_tokenizer.py), as spec
§8.3 describes it, with the same data structure: a trie whose every node holds a 256-slot
child list and the set of (bytes, id) pairs that end at it. Encoding walks the trie from the
current position byte by byte, remembers the last node that ends a token, and emits that
token's id when the walk can go no further. The vocabulary is read the way the reference reads
it: each line's literal is evaluated as a Python expression and str results are UTF-8 encoded.

    python3 trie_tokenizer_reference.py --vocab rwkv_vocab_v20230424.txt --corpus corpus.txt \
        [--ids-out ids.json] [--check-ids skein_ids.json]

Times are CPU seconds of this process (time.process_time), as Google Benchmark reports for the
C++ side, so that other load on the machine does not skew the comparison.
"""
import argparse
import json
import sys
import time


class Node:
    __slots__ = ("children", "endings")

    def __init__(self):
        self.children = [None] * 256
        self.endings = set()

    def insert(self, key, token_id):
        node = self
        for byte in key:
            child = node.children[byte]
            if child is None:
                child = node.children[byte] = Node()
            node = child
        node.endings.add((key, token_id))

    def longest_match(self, data, start):
        """Returns (end, endings) for the longest token that starts at `start`."""
        node = self
        pos = start
        found = None
        byte = data[pos]
        while node.children[byte] is not None:
            node = node.children[byte]
            pos += 1
            if node.endings:
                found = (pos, node.endings)
            if pos == len(data):
                break
            byte = data[pos]
        return found


class TrieTokenizer:
    def __init__(self, vocab_path):
        self.id_to_bytes = {}
        with open(vocab_path, "r", encoding="utf-8") as f:
            for line in f.readlines():
                token_id = int(line[:line.index(" ")])
                value = eval(line[line.index(" "):line.rindex(" ")])
                if isinstance(value, str):
                    value = value.encode("utf-8")
                assert isinstance(value, bytes)
                assert len(value) == int(line[line.rindex(" "):])
                self.id_to_bytes[token_id] = value
        self.root = Node()
        for token_id, value in self.id_to_bytes.items():
            self.root.insert(value, token_id)

    def encode_bytes(self, data):
        ids = []
        pos = 0
        while pos < len(data):
            end, endings = self.root.longest_match(data, pos)
            assert end != pos
            _, token_id = next(iter(endings))
            ids.append(token_id)
            pos = end
        return ids

    def decode_bytes(self, ids):
        return b"".join(map(lambda i: self.id_to_bytes[i], ids))

    def encode(self, text):
        return self.encode_bytes(text.encode("utf-8"))

    def decode(self, ids):
        try:
            return self.decode_bytes(ids).decode("utf-8")
        except Exception:
            return "\ufffd"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vocab", required=True)
    parser.add_argument("--corpus", required=True)
    parser.add_argument("--ids-out", help="write the ids as a JSON array")
    parser.add_argument("--check-ids", help="a JSON array of ids to compare with")
    args = parser.parse_args()

    start = time.process_time()
    tokenizer = TrieTokenizer(args.vocab)
    load_s = time.process_time() - start
    with open(args.corpus, "rb") as f:
        data = f.read()
    megabytes = len(data) / 1e6

    start = time.process_time()
    ids = tokenizer.encode_bytes(data)
    encode_s = time.process_time() - start
    start = time.process_time()
    decoded = tokenizer.decode_bytes(ids)
    decode_bytes_s = time.process_time() - start
    start = time.process_time()
    text = tokenizer.decode(ids)
    decode_text_s = time.process_time() - start
    assert decoded == data, "round trip failed"
    assert text == data.decode("utf-8", errors="replace") or text == "\ufffd"

    print(f"python {sys.version.split()[0]}; corpus {len(data)} bytes, {len(ids)} tokens")
    print(f"load          {load_s * 1e3:10.1f} ms")
    print(f"encode        {encode_s:10.2f} s  {megabytes / encode_s:8.3f} MB/s")
    print(f"decode bytes  {decode_bytes_s:10.3f} s  {megabytes / decode_bytes_s:8.2f} MB/s")
    print(f"decode text   {decode_text_s:10.3f} s  {megabytes / decode_text_s:8.2f} MB/s")
    if args.ids_out:
        with open(args.ids_out, "w") as f:
            json.dump(ids, f)
    if args.check_ids:
        with open(args.check_ids) as f:
            other = json.load(f)
        if other != ids:
            first = next((i for i, (a, b) in enumerate(zip(ids, other)) if a != b),
                         min(len(ids), len(other)))
            print(f"MISMATCH with {args.check_ids} at token {first}")
            return 1
        print(f"ids identical to {args.check_ids}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
