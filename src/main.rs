fn main() -> std::process::ExitCode {
    authstore::cli::main()
}
