// app/PasskeyButton.tsx: registers a passkey (signed in) or signs in with
// one, through the browser's WebAuthn and Auth.js's Passkey provider.
"use client";
import { signIn } from "next-auth/webauthn";
import { useState } from "react";

export function PasskeyButton({ action, label }: { action: "register" | "authenticate"; label: string }) {
  const [failure, setFailure] = useState<string>();
  return (
    <p>
      <button
        type="button"
        onClick={() => {
          setFailure(undefined);
          // Auth.js redirects back here when it is done, or to its error page.
          signIn("passkey", { action, redirectTo: "/" }).catch((error: Error) => setFailure(error.message));
        }}
      >
        {label}
      </button>
      {failure && (
        <span className="rejected" role="alert">
          {" "}
          The browser did not complete it: {failure}
        </span>
      )}
    </p>
  );
}
