// The one-time sign-in link: /console/open#<token>. The token never travels
// in a URL the server or a proxy logs; it is posted once, then forgotten.
const token = location.hash.slice(1);
history.replaceState(null, "", "/console/open");

const title = document.getElementById("title");
const message = document.getElementById("message");

function refuse(text) {
  title.textContent = "This link cannot sign you in";
  message.textContent = text;
  message.className = "error";
}

if (!token) {
  refuse("The link has no token. Run `authstore console-link` where the database is, and open the link it prints.");
} else {
  try {
    const response = await fetch("/api/console/open", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ token }),
      credentials: "same-origin",
    });
    if (response.ok) {
      location.replace("/console/");
    } else if (response.status === 403) {
      refuse("This sign-in link was already used or has expired (links last 10 minutes and work once). Run `authstore console-link` for a new one.");
    } else {
      refuse(`The server answered ${response.status}. Try again, or run \`authstore console-link\` for a new link.`);
    }
  } catch {
    refuse("The server could not be reached.");
  }
}
