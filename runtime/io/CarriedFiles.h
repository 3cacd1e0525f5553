// The non-tensor files a converted checkpoint keeps from its source: configuration,
// tokenizer and chat template, and the custom code some releases need to load.
#pragma once

#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

#include <string>
#include <vector>

namespace ckptmap {

/// Whether a file of this name is carried: config.json, generation_config.json,
/// special_tokens_map.json, added_tokens.json, vocab.json, vocab.txt, merges.txt,
/// preprocessor_config.json, processor_config.json, video_preprocessor_config.json,
/// tokenizer*, chat_template*, *.tiktoken, configuration_*.py, modeling_*.py,
/// tokenization_*.py. Not hf_quant_config.json: quantization may change, so whoever writes
/// the output decides it.
bool isCarriedFile(llvm::StringRef name);

/// Names of the carried regular files (symbolic links followed) directly in `dir`, sorted.
llvm::Expected<std::vector<std::string>> listCarriedFiles(llvm::StringRef dir);

} // namespace ckptmap
