#include <cstdio>
int main() { std::puts("ckptmap"); return 0; }
