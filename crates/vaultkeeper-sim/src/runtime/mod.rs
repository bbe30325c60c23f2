//! The pod runtime: runs a pod's containers as real processes in their own mount
//! namespace, with the pod's volumes, hosts file and environment.
