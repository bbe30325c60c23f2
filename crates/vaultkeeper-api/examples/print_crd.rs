fn main() {
    print!("{}", vaultkeeper_api::crd_yaml().unwrap());
}
