#!/usr/bin/env python3
"""Writes a deterministic multilingual text for tokenizer benchmarks.

The text mixes paragraphs of English, Chinese, Japanese, Russian and Arabic prose, emoji
(including skin-tone and ZWJ sequences), Python and C++ code, numbers and chat turns. The
sentences are random combinations of the word lists below, drawn with a fixed seed, so the
same arguments always give the same bytes (check with sha256sum).

    python3 make_corpus.py --out /tmp/corpus.txt --megabytes 12
"""
import argparse
import random

ENGLISH = ("the river carried small boats past the old mill while children counted "
           "clouds and merchants argued about the price of salt in the morning market "
           "every winter the village repaired its bridge with timber from the northern "
           "forest because nobody trusted the iron that came from the city").split()
CHINESE = list("我们在山谷里建了一座小房子每天早上听见鸟叫然后去河边打水"
               "这个城市的历史很长街道两旁有许多老树和茶馆学生们在图书馆里读书")
JAPANESE = ["わたしは", "毎朝", "駅まで", "歩いて", "行きます", "東京の", "空は", "とても",
            "青くて", "きれいです", "コーヒーを", "飲みながら", "本を", "読みました",
            "カタカナの", "テスト", "ですね", "。", "、"]
RUSSIAN = ("зимой в деревне тихо только ветер шумит в соснах а по вечерам люди "
           "собираются у печки и рассказывают истории о далёких городах и морях").split()
ARABIC = ("في الصباح نذهب إلى السوق لشراء الخبز والتمر ثم نجلس في الحديقة ونقرأ "
          "الكتب القديمة التي كتبها العلماء عن النجوم والبحار").split()
EMOJI = ["😀", "👍🏽", "🚀", "🎉", "❤️", "👩‍💻", "🇯🇵", "🌧️", "✅", "🔥", "🐍", "😂"]
CODE = [
    "def fibonacci(n):\n    a, b = 0, 1\n    for _ in range(n):\n        a, b = b, a + b\n"
    "    return a\n",
    "for (int i = 0; i < count; ++i) {\n  total += values[i] * weights[i];\n}\n",
    "if err != nil {\n\treturn fmt.Errorf(\"open %s: %w\", path, err)\n}\n",
    "SELECT name, COUNT(*) FROM orders WHERE created_at > '2024-01-01' GROUP BY name;\n",
    "const result = items.filter(x => x.active).map(x => ({ id: x.id, label: x.name }));\n",
    "    # TODO: handle the empty case\n    assert len(queue) >= 0, \"queue underflow\"\n",
]


def words(rng, vocabulary, count, sep):
    return sep.join(rng.choice(vocabulary) for _ in range(count))


def paragraph(rng):
    kind = rng.randrange(9)
    if kind == 0:
        text = words(rng, ENGLISH, rng.randint(20, 60), " ")
        return text[0].upper() + text[1:] + ".\n\n"
    if kind == 1:
        return words(rng, CHINESE, rng.randint(30, 90), "") + "。\n\n"
    if kind == 2:
        return words(rng, JAPANESE, rng.randint(15, 40), "") + "\n\n"
    if kind == 3:
        return words(rng, RUSSIAN, rng.randint(20, 50), " ").capitalize() + ".\n\n"
    if kind == 4:
        return words(rng, ARABIC, rng.randint(20, 50), " ") + ".\n\n"
    if kind == 5:
        mixed = [rng.choice(ENGLISH) if rng.random() < 0.7 else rng.choice(EMOJI)
                 for _ in range(rng.randint(10, 30))]
        return " ".join(mixed) + "\n\n"
    if kind == 6:
        return "".join(rng.choice(CODE) for _ in range(rng.randint(1, 4))) + "\n"
    if kind == 7:
        numbers = " ".join(str(rng.randint(0, 10 ** rng.randint(1, 9)))
                           for _ in range(rng.randint(5, 20)))
        return f"Totals for run {rng.randint(1, 999)}: {numbers}\n\n"
    question = words(rng, ENGLISH, rng.randint(5, 15), " ")
    answer = words(rng, ENGLISH, rng.randint(10, 40), " ")
    return f"User: {question}?\n\nAssistant: {answer}.\n\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--megabytes", type=float, default=12.0)
    parser.add_argument("--seed", type=int, default=20240501)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    target = int(args.megabytes * 1_000_000)
    parts, size = [], 0
    while size < target:
        p = paragraph(rng).encode("utf-8")
        parts.append(p)
        size += len(p)
    with open(args.out, "wb") as f:
        f.write(b"".join(parts))
    print(f"wrote {size} bytes to {args.out}")


if __name__ == "__main__":
    main()
