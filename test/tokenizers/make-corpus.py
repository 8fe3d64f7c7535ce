#!/usr/bin/env python3
"""Writes corpus.json: the texts the tokenizer conformance suite encodes.

Texts of our own making, by theme: scripts, Unicode edge cases (combining
marks, NFC/NFD/NFKC forms, new characters), whitespace, special tokens
written as text, numbers, code, and empty or one-character strings. Each
NFC text also appears in NFD form, so that tokenizers with an NFC normalizer
(Qwen) are checked on both. Run: test/tokenizers/make-corpus.py > corpus.json
"""
import json
import sys
import unicodedata

scripts = [
    "The quick brown fox jumps over the lazy dog.",
    "Hello, world! How's it going? I'm fine; they've left, we'll see, he'd go.",
    "I'M SHOUTING, IT'S LOUD, WE'LL SEE, YOU'RE RIGHT, THEY'VE GONE, HE'D KNOW",
    "Ça va? Élève, naïve, coöperate, façade, déjà vu, Ångström.",
    "Größe, Straße, Fußgänger, Äpfel und Öl über Übungen.",
    "Português: ação, coração, pão; Español: niño, año, ¿qué?, ¡olé!",
    "Polski: zażółć gęślą jaźń; Čeština: příliš žluťoučký kůň.",
    "Türkçe: İstanbul, ışık, ğüşöç; Tiếng Việt: Tiếng Việt có dấu.",
    "Русский: Съешь же ещё этих мягких французских булок, да выпей чаю.",
    "Українська: Чуєш їх, доцю, га? Кумедна ж ти, прощайся без ґольфів!",
    "Ελληνικά: Ξεσκεπάζω την ψυχοφθόρα βδελυγμία.",
    "עברית: דג סקרן שט בים מאוכזב ולפתע מצא חברה.",
    "العربية: نص حكيم له سر قاطع وذو شأن عظيم مكتوب على ثوب أخضر.",
    "فارسی: ۱۲۳۴۵ و ٦٧٨٩٠ عدد هستند.",
    "हिन्दी: ऋषियों को सताने वाले दुष्ट राक्षसों के राजा रावण का सर्वनाश करने वाले।",
    "বাংলা: আমি বাংলায় গান গাই। தமிழ்: யாமறிந்த மொழிகளிலே.",
    "ไทย: เป็นมนุษย์สุดประเสริฐเลิศคุณค่า กว่าบรรดาฝูงสัตว์เดรัจฉาน",
    "ລາວ ພາສາ; ខ្មែរ ភាសា; မြန်မာ ဘာသာ; ქართული ენა; Հայերեն լեզու",
    "中文：我能吞下玻璃而不伤身体。繁體中文：我能吞下玻璃而不傷身體。",
    "日本語：いろはにほへと ちりぬるを カタカナ ｶﾀｶﾅ 漢字とかな。",
    "한국어: 다람쥐 헌 쳇바퀴에 타고파. 키스의 고유조건은 입술끼리 만나야 하고",
    "አማርኛ: ሰማይ አይታረስ ንጉሥ አይከሰስ። ᏣᎳᎩ ᎦᏬᏂᎯᏍᏗ",
    "Emoji: 😀😃😄 👍🏽 👨‍👩‍👧‍👦 🏳️‍🌈 🇫🇷🇯🇵 ❤️ ✨🎉",
    "Math: ∀x∈ℝ, ∃y: x²+y²=z²; ∑_{i=1}^{n} i = n(n+1)/2; √2 ≈ 1.414; ∞ ≠ ∅",
    "Symbols: © ® ™ § ¶ † ‡ • … ‰ ′ ″ € £ ¥ ₹ ₿ ← → ↑ ↓ ⇒ ⇔",
    "Box drawing: ┌─┬─┐ │ │ │ └─┴─┘ ░▒▓█",
    "𝐁𝐨𝐥𝐝 𝑰𝒕𝒂𝒍𝒊𝒄 𝔉𝔯𝔞𝔨𝔱𝔲𝔯 𝕯𝖔𝖚𝖇𝖑𝖊 (mathematical alphanumerics)",
    "Gothic 𐌰𐌱𐌲, Old Italic 𐌀𐌁, Cuneiform 𒀀𒀁, Egyptian 𓀀𓀁, Linear B 𐀀𐀁",
    "CJK extension B: 𠀀𠀁𠀂 𪚥 𩸽; extension G: 𰀀𰀁",
    "Mixed: Hello世界123abcПривет!",
]

unicode_edges = [
    "e\u0301 a\u0300 o\u0308 n\u0303 c\u0327",            # combining marks
    "\u00e9 \u00e0 \u00f6 \u00f1 \u00e7",                  # precomposed
    "\u212b \u2126 \u212a",                                # Angstrom, Ohm, Kelvin
    "\ufb01 \ufb02 \ufb03 \u2460 \u00b2 \u00bd \u2163",    # compatibility
    "\uff21\uff22\uff23 \uff11\uff12\uff13 \uff01",        # fullwidth
    "\u1100\u1161\u11a8 \uac01",                           # Hangul jamo / syllable
    "q\u0307\u0323 q\u0323\u0307 \u1e0b\u0323 \u1e0d\u0307",  # canonical ordering
    "a\u0301\u0301\u0301\u0301\u0301 zalgo: Z\u0351\u036b\u0343\u036a\u0302\u036b",
    "zero\u200bwidth\u200cnon\u200djoiner\u2060word\ufeffjoiner",
    "rtl \u202eevil\u202c mark\u200f \u200e",
    "private use \ue000\uf8ff \U000f0000",
    "noncharacters \ufdd0 \ufffe \uffff \U0001fffe",
    "replacement \ufffd and \u0000 nul and \u0007 bell",
    "control \u0001\u0002\u001b[31mred\u001b[0m \u007f",
    "Kawi digits \U00011f50\U00011f51\U00011f52 Kawi letter \U00011f04\U00011f05",
    "Nag Mundari \U0001e4d0\U0001e4d1 digits \U0001e4f0\U0001e4f1\U0001e4f2",
    "Unicode 15 emoji \U0001fae8 \U0001fa77 \U0001f426\u200d\u2b1b",
    "Kaktovik numerals \U0001d2c0\U0001d2c1\U0001d2c2",
    "Cyrillic Ext-D \U0001e030\U0001e031 Devanagari Ext-A \U00011b00\U00011b01",
    "Ogham\u1680space Mongolian\u180evowel separator",
    "Long s \u017f and 'S, \u017ft, '\u017f",
    "Turkish dotted \u0130 and dotless \u0131, German \u1e9e \u00df",
    "Greek final sigma \u03c3\u03c2 and \u03a3 tonos \u0386 \u0390 \u1fbe \u037e \u0387",
    "superscripts \u2070\u00b9\u00b2\u00b3\u2074 subscripts \u2080\u2081\u2082",
    "roman \u2160\u2161\u2162 circled \u2460\u2461 fractions \u00bc\u2153\u215e",
    "Arabic-Indic \u0660\u0661\u0662 extended \u06f4\u06f5 Devanagari \u0966\u0967 Thai \u0e51\u0e52",
    "Tibetan \u0f00\u0f40\u0f72\u0f71 Sinhala \u0d9a\u0dca\u200d\u0dbb",
    "Vietnamese NFD: Ti\u00ea\u0301ng Vi\u00ea\u0323t",
    "Hangul NFD: \u1112\u1161\u11ab\u1100\u1173\u11af",
    "Korean compat jamo \u3131\u314f \u3164",
    "Japanese dakuten NFD: \u304b\u3099\u30cf\u309a \u30ac\u30d1",
    "halfwidth kana \uff76\uff9e\uff8a\uff9f",
    "CJK compatibility \uf900\uf901\ufa10 \u2f00\u2f01 \u3300\u3301",
    "ligatures \u01c4\u01c5\u01c6 \u0132\u0133 \u1d6b",
    "musical \U0001d15e\U0001d15f \U0001d160",
    "emoji modifiers \U0001f44b\U0001f3fb\U0001f44b\U0001f3ff and keycap 1\ufe0f\u20e3 #\ufe0f\u20e3",
    "tag sequence \U0001f3f4\U000e0067\U000e0062\U000e0073\U000e0063\U000e0074\U000e007f",
    "variation selectors \u2764\ufe0e \u2764\ufe0f \u845b\U000e0100",
]

whitespace = [
    "", " ", "  ", "   ", "\t", "\n", "\r\n", "\n\n\n", " \n ", "\t\t\tx",
    "a", "ab", "A", "1", "!", "'", "'s", " 's", "\u00e9", "\u4e2d",
    "trailing spaces   ", "   leading spaces", "  both  ", "multiple    inner     spaces",
    "tabs\tbetween\twords\t", "new\nlines\n\nand\n\n\nmore", "windows\r\nline\r\nends\r\n",
    "mixed \t\n \r\n\t  whitespace", "nbsp\u00a0between\u00a0words", "ideographic\u3000space",
    "en\u2002em\u2003thin\u2009hair\u200a spaces", "line\u2028separator paragraph\u2029separator",
    "next line\u0085char", "vertical\u000btab form\u000cfeed", "     \n     \n",
    "x" * 200, " " * 50 + "x", "a b c d e f g h i j k l m n o p q r s t u v w x y z",
    "punctuation!!! ??? ... --- *** ### @@@ $$$ %%% ^^^ &&& ((( ))) [[[ ]]]",
    "'''quotes''' \"\"\"doubles\"\"\" ``backticks`` \u2018curly\u2019 \u201cdouble\u201d \u00abguillemets\u00bb",
    "can't won't shouldn't y'all o'clock rock'n'roll 'tis '90s",
]

numbers = [
    "0 1 12 123 1234 12345 123456 1234567 12345678901234567890",
    "3.14159 2.71828 -42 +7 1e10 6.022e23 0x1F 0b1010 0o777",
    "1,000,000.50 1.000.000,50 1 000 000 100% 50\u00a0% $1.99 \u20ac2,50 \u00a53000",
    "2024-01-15T10:30:00Z 12:34:56 +1 (555) 123-4567 192.168.0.1",
    "v1.2.3-beta.4+build.567 ISBN 978-3-16-148410-0",
]

code = [
    "def f(x):\n    return x ** 2  # square\n\nprint(f(3))\n",
    "int main(void) {\n\tprintf(\"%d\\n\", 42);\n\treturn 0;\n}\n",
    "for (let i = 0; i < n; ++i) { arr[i] = i * 2; } // loop",
    "<html><body><p class=\"x\">Hi &amp; bye</p></body></html>",
    "{\"key\": [1, 2, {\"nested\": null}], \"b\": true}",
    "SELECT * FROM users WHERE name = 'O''Brien' AND id >= 10;",
    "https://example.com/path?q=1&r=two#frag mailto:a.b@c.org",
    "C:\\Users\\name\\file.txt /usr/local/bin/tool ~/.config",
    "    indented four\n        eight\n\tand tab\n",
    "$ ls -la | grep '\\.cpp$' && echo \"done\" > /dev/null 2>&1",
    "a+b=c; x-=1; y*=2; z/=3; w%=4; p<<=1; q>>=2; r&&s||!t",
    "```python\nimport os\n```",
]

special_as_text = [
    "<bos>", "<eos>", "<pad>", "<unk>", "<mask>", "<s>", "</s>", "<s> hi </s>",
    "<start_of_turn>user\nHello<end_of_turn>\n<start_of_turn>model\n",
    "<start_of_image> <end_of_image> <image_soft_token>",
    "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>",
    "<|end_of_text|> <|reserved_special_token_0|> <|finetune_right_pad_id|>",
    "<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>user\nHi<|im_end|>",
    "<|endoftext|>text after", "before<|endoftext|>", "<|endoftext|><|endoftext|>",
    "<think>\nreasoning\n</think>\n\nanswer", "<tool_call>{\"a\":1}</tool_call>",
    "<|vision_start|><|image_pad|><|vision_end|> <|fim_prefix|>x<|fim_suffix|>y<|fim_middle|>",
    "<bos <eos> <|im_start <|im_end|", "< bos > <BOS> <\u200bbos>",
    "x<bos>y <eos>z  <pad>  ", "<0x41> <0xFF> <0x0A>", "\u2581 \u2581\u2581 \u2581x",
    "<unused0> <unused99> [multimodal] <mask>",
    "\u0120 \u010a \u0100 byte-level lookalikes",
]

texts = scripts + unicode_edges + whitespace + numbers + code + special_as_text
# NFD and NFKC forms of every text that has a different one, so that NFC
# normalizers meet decomposed input and compatibility characters.
derived = []
for t in texts:
    for form in ("NFD", "NFKC"):
        n = unicodedata.normalize(form, t)
        if n != t and n not in texts and n not in derived:
            derived.append(n)
corpus = texts + derived
json.dump(corpus, sys.stdout, ensure_ascii=False, indent=0)
sys.stdout.write("\n")
