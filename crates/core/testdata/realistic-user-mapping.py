if user.type == "service_account":
    skip_object()
parts = user.name.split(" ", 1)
dept = user.attributes.get("department")
title = user.attributes.get("title", "")
domain = provider.domains[0] if provider.domains else "contoso.onmicrosoft.com"
return {
    "given_name": parts[0] or None,
    "surname": parts[1] if len(parts) > 1 else None,
    "department": dept if type(dept) == "string" else None,
    "job_title": str(title)[:128] or None,
    "user_principal_name": f"{regex_replace(user.username.lower(), r'[^a-z0-9._-]', '')}@{domain}",
    "company_name": "Contoso",
}
