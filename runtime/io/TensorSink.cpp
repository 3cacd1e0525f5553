#include "runtime/io/TensorSink.h"

namespace ckptmap {

TensorSink::~TensorSink() = default;

} // namespace ckptmap
