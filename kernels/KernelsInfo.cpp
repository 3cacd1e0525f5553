#include "base/DType.h"

namespace ckptmap {
// Anchors the library; the kernels proper live in cpu/ and cuda/.
static_assert(dtypeSize(DType::BF16) == 2);
} // namespace ckptmap
