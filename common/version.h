#ifndef TPSERVE_COMMON_VERSION_H_
#define TPSERVE_COMMON_VERSION_H_

namespace tpserve {

// Semantic version of the tpserve binaries and their protocols.
inline constexpr char kVersion[] = "0.1.0";

}  // namespace tpserve

#endif  // TPSERVE_COMMON_VERSION_H_
