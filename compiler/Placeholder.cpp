namespace ckptmap {}
